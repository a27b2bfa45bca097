"""A local run directory is written by one command at a time (the test_resume test refuses a
second command while a real one runs)."""

import pytest

from pipelines.run_lock import run_lock
from pipelines.stage_dir import StageError


def test_a_held_run_directory_is_refused_naming_its_holder_until_released(tmp_path, monkeypatch):
    run_dir = str(tmp_path / "new" / "run")
    monkeypatch.setattr("sys.argv", ["ccmine", "mine", "--run", run_dir, "--src", "de"])
    with run_lock(run_dir):
        # Another open file of the lock conflicts as another process's would.
        with pytest.raises(StageError, match=r"run is in use by ccmine mine --run .*run --src de "):
            with run_lock(run_dir):
                pass
    assert not (tmp_path / "new" / "run").exists()  # a command that wrote nothing leaves none
    with run_lock(run_dir):
        (tmp_path / "new" / "run" / "sentences").mkdir()
    assert (tmp_path / "new" / "run" / "sentences").is_dir()


def test_runs_on_object_stores_are_not_locked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with run_lock("gs://bucket/run"), run_lock("gs://bucket/run"):
        pass
    assert not list(tmp_path.iterdir())
