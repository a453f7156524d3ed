"""`au-ttt predict` input expansion and output folder, without a model: symlink loops, self-naming list files,
the expansion cap, the served model's root folder, earlier outputs in --out and dead writers' temporaries."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from au_ttt.errors import InputError
from au_ttt.fileio import sweep_stale_dir, temp_file
from au_ttt.predict.expand import OUTSIDE_ROOT, InputBudget, Unreadable, expand_inputs
from au_ttt.predict.outdir import check_out, earlier_outputs, prepare_out


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def looped(tmp_path):
    """d/a.jpg, d/loop/b.png and two links back up: d/loop/self -> ., d/loop/up -> .."""
    d = tmp_path / "d"
    _touch(d / "a.jpg")
    _touch(d / "loop" / "b.png")
    os.symlink(".", d / "loop" / "self")
    os.symlink("..", d / "loop" / "up")
    return d


def test_glob_and_folder_over_symlink_loops_end_with_each_file_once(looped):
    # in a child process: before the fix glob.glob(recursive=True) walked self/up/self/… without end
    code = ("import sys; from au_ttt.predict.expand import expand_inputs\n"
            "for item in sys.argv[1:]:\n"
            "    sources, bad = expand_inputs([item])\n"
            "    print(sorted(s.path.name for s in sources), len(sources), bad)\n")
    items = [str(looped / "**"), str(looped / "**" / "*.png"), str(looped), str(looped / "loop" / "*" / "*")]
    done = subprocess.run([sys.executable, "-c", code, *items], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    # loop/*/*: through `up` (d) only; `self` is loop itself, a folder already entered, so it is not re-entered
    assert done.stdout.splitlines() == ["['a.jpg', 'b.png'] 2 []", "['b.png'] 1 []", "['a.jpg', 'b.png'] 2 []",
                                        "['a.jpg'] 1 []"]


def test_glob_follows_a_link_to_a_folder_once_and_keeps_glob_semantics(tmp_path):
    _touch(tmp_path / "data" / "s1" / "x.jpg")
    _touch(tmp_path / "data" / "s1" / "deep" / "y.jpg")
    _touch(tmp_path / "data" / ".hidden" / "z.jpg")
    _touch(tmp_path / "data" / "other" / "w.txt")
    _touch(tmp_path / "elsewhere" / "v.jpg")
    os.symlink(tmp_path / "elsewhere", tmp_path / "data" / "linked")
    names = lambda item: [s.path.name for s in expand_inputs([str(tmp_path / item)])[0]]  # noqa: E731
    assert names("data/*/*.jpg") == ["v.jpg", "x.jpg"]             # one level; hidden folders skipped
    assert names("data/**/*.jpg") == ["v.jpg", "x.jpg", "y.jpg"]   # any depth, the linked folder included
    assert names("data/s*") == ["x.jpg", "y.jpg"]                   # a matched folder brings all below it


def test_expansion_stops_at_the_cap_with_a_clear_message(tmp_path):
    for i in range(6):
        _touch(tmp_path / f"f{i}.jpg")
    assert len(expand_inputs([str(tmp_path)], budget=InputBudget(6))[0]) == 6
    with pytest.raises(InputError, match=r"more than 5 files; split the run .* --max-inputs"):
        expand_inputs([str(tmp_path / "*.jpg")], budget=InputBudget(5))


def test_a_list_file_naming_itself_is_expanded_once_and_reported_once(tmp_path):
    _touch(tmp_path / "a.jpg")
    _touch(tmp_path / "b.jpg")
    # before the fix, 16 such lines gave 16^5 = 1,048,576 entries; 3 give 243 "nested too deep" entries
    (tmp_path / "list.txt").write_text("a.jpg\n" + "list.txt\n" * 3 + "./list.txt\nsub.lst\na.jpg\n")
    (tmp_path / "sub.lst").write_text("b.jpg\nlist.txt\n")           # a longer cycle: list → sub → list
    sources, bad = expand_inputs([str(tmp_path / "list.txt"), str(tmp_path / "sub.lst")])
    assert [s.path.name for s in sources] == ["a.jpg", "b.jpg"]
    assert [(Path(b.name).name, b.reason.split(":")[0]) for b in bad] == [
        ("list.txt", "the list file names itself (directly or through another list)")]


def test_outside_the_root_every_path_gets_the_same_message(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "secret"
    _touch(root / "in.jpg")
    _touch(outside / "exists.jpg")
    (outside / "list.txt").write_text("exists.jpg\n")
    os.symlink(outside, root / "link")                               # a link inside the root to outside
    os.symlink(outside / "exists.jpg", root / "file-link.jpg")
    items = ["in.jpg", str(outside / "exists.jpg"), str(outside / "missing.jpg"), str(outside / "list.txt"),
             str(outside), str(outside / "*.jpg"), "../secret/exists.jpg", "link/exists.jpg", "file-link.jpg",
             "link/*.jpg", "/etc/passwd"]
    sources, bad = expand_inputs(items, root, root=root)
    assert [s.name for s in sources] == ["in.jpg"]
    assert [b.name for b in bad] == items[1:]
    assert {b.reason for b in bad} == {OUTSIDE_ROOT}                 # nothing tells existing from missing
    sources, bad = expand_inputs(["*.jpg", str(root)], root, root=root)   # globs and folders skip the links
    assert [s.path.name for s in sources] == ["in.jpg"] and bad == []
    (root / "notes.txt").write_text("secret line\n")                 # a list file would echo its lines back
    assert expand_inputs(["notes.txt"], root, root=root) == ([], [Unreadable(
        "notes.txt", "list files are not read by the served model; send the paths themselves")])


def test_earlier_outputs_are_refused_then_removed_with_overwrite(tmp_path):
    out = tmp_path / "out"
    _touch(out / "notes.md")                                          # the user's own file: never an output
    (out / "plain.csv").write_text("a,b\n1,2\n")                      # not predict's header: kept
    assert earlier_outputs(out) == [] and check_out(out, False) == []
    header = "input,frame,timestamp,face_id,confidence,success,face_x\n"
    (out / "old_input.csv").write_text(header)                        # a killed run: CSVs, no summary
    _touch(out / "overlay" / "old_input.png")
    with pytest.raises(InputError, match=r"earlier predict run \(old_input.csv, overlay/old_input.png\).*--overwrite"):
        check_out(out, False)
    removed = prepare_out(out, True)
    assert sorted(p.name for p in removed) == ["old_input.csv", "old_input.png"]
    assert sorted(p.name for p in out.iterdir()) == ["notes.md", "plain.csv"]


def test_dead_writers_temporaries_are_swept_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = [tmp_path / f".x.csv.{dead}.abcd_123.tmp", tmp_path / f".clip.mp4.{dead}.k2j4h5g6.tmp.mp4"]
    for p in stale:
        _touch(p)
    live = temp_file(tmp_path / "y.csv")                                # this process: alive
    other = _touch(tmp_path / f".notes.{dead}.txt")                     # not a temporary's name
    assert sorted(sweep_stale_dir(tmp_path)) == sorted(stale)
    assert live.exists() and other.exists()
