"""AU detection on a user's own images and videos with a trained AU-TTT model (``au-ttt predict``).

Layers, each calling only downward:

* :mod:`expand` turns INPUT arguments into files (folders, globs, list files; loops, cycles and the served
  model's root folder handled there); :mod:`inputs` turns files into frames;
* :mod:`faces` finds faces (MTCNN or dlib HOG) and fits dlib's 68 landmarks, or :mod:`landmark_table` supplies
  given landmarks; :mod:`tracking` keeps face ids stable across video frames;
* :mod:`prepare` turns a face into exactly the tensors training fed the model (alignment, crop,
  normalisation, RoI masks) by calling the training-time functions;
* :mod:`runs` (the one adapter to the training package) and :mod:`bundle` load a trained model: run directory,
  exported bundle or MLflow URI (fetched by :mod:`mlflow_fetch`);
* :mod:`pipeline` scores frames in batches; :mod:`output` owns the CSV schema; :mod:`overlay` draws;
  :mod:`job` is one ``predict`` run (files, summary) and :mod:`outdir` guards its ``--out``;
  :mod:`mlflow_model` wraps a bundle as an MLflow pyfunc;
* :mod:`samples` (real photographs from installed packages) and :mod:`bench` back the tests and docs/predict.md.
"""
