"""Training: one engine for ``au-ttt train``, ``pretrain`` and ``evaluate``.

``runtime`` (device policy, autocast, seeding, DDP launch on 127.0.0.1, worker lifetime) → ``recipe`` (AdamW +
warm-up cosine, one guarded update step) → ``loop`` (one fold, resumable under its ``runkey``), ``pretrain``
(backbone classification), ``cross`` / ``evaluate`` (scoring); ``records`` are the typed JSON files they write,
``tracking`` / ``mlflow_store`` the run records, ``gpu_slots`` the per-job GPU locks, ``weights`` the choice of
how a weights file initialises a model. ``config`` holds the torch-free ``train``/``pretrain`` sections.
"""
