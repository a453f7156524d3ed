"""What ``au-ttt predict --out`` may hold when a run starts: no earlier run's outputs, unless ``--overwrite``.

A rerun into the folder of an earlier run would replace ``predictions.csv`` but leave the per-input CSVs of
inputs it no longer has beside it — one folder, two runs, no way to tell. So an ``--out`` that holds an
earlier run's outputs (``summary.json``, ``predictions.csv``, CSVs with predict's header, ``overlay/``
images and videos — also those of a killed run, which wrote no summary) is refused, naming them;
``--overwrite`` removes exactly those before anything is scored. Other files in the folder are left alone,
and so are the run's own inputs. Temporaries of killed writers (``.<name>.<pid>.<random>.tmp``, see
:mod:`au_ttt.fileio`) are swept at every start.
"""

from __future__ import annotations

from pathlib import Path

from au_ttt.errors import InputError
from au_ttt.fileio import sweep_stale_dir
from au_ttt.predict.output import columns

__all__ = ["COMBINED_CSV", "OVERLAY_DIR", "SUMMARY_FILE", "check_out", "earlier_outputs", "prepare_out"]

COMBINED_CSV, SUMMARY_FILE, OVERLAY_DIR = "predictions.csv", "summary.json", "overlay"
_HEADER = ",".join(columns(())[:6])             # input,frame,timestamp,face_id,confidence,success
_OVERLAY_SUFFIXES = (".png", ".mp4")


def _is_predict_csv(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            return fh.readline(len(_HEADER) + 1).startswith(_HEADER)
    except OSError:
        return False


def earlier_outputs(out: Path) -> list[Path]:
    """The files in ``out`` that an earlier ``predict`` run wrote."""
    if not out.is_dir():
        return []
    found = [p for p in sorted(out.iterdir()) if p.is_file() and not p.name.startswith(".")
             and (p.name in (SUMMARY_FILE, COMBINED_CSV) or (p.suffix == ".csv" and _is_predict_csv(p)))]
    overlay = out / OVERLAY_DIR
    if overlay.is_dir():
        found += [p for p in sorted(overlay.iterdir()) if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in _OVERLAY_SUFFIXES]
    return found


def check_out(out: Path, overwrite: bool) -> list[Path]:
    """The earlier outputs ``--overwrite`` will remove; an :class:`InputError` if there are some without it."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder; give a folder")
    earlier = earlier_outputs(out)
    if earlier and not overwrite:
        names = ", ".join(str(p.relative_to(out)) for p in earlier[:3]) + (
            f" and {len(earlier) - 3} more" if len(earlier) > 3 else "")
        raise InputError(f"--out {out}: holds the outputs of an earlier predict run ({names}); choose a new "
                         "folder, or pass --overwrite to remove those outputs first (other files stay)")
    return earlier


def prepare_out(out: Path, overwrite: bool, keep: frozenset[Path] = frozenset()) -> list[Path]:
    """Sweep dead writers' temporaries, then refuse or remove an earlier run's outputs; returns the removed.

    ``keep``: resolved paths never removed (the run's inputs, should they lie in ``out``).
    """
    for folder in (out, out / OVERLAY_DIR):
        sweep_stale_dir(folder)
    removed = []
    for path in check_out(out, overwrite):
        if path.resolve() not in keep:
            path.unlink(missing_ok=True)
            removed.append(path)
    overlay = out / OVERLAY_DIR
    if overlay.is_dir() and not any(overlay.iterdir()):
        overlay.rmdir()
    return removed
