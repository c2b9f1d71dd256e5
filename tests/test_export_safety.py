"""Export safety: versions are positive integers, stray files are skipped, killed exports are swept."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tfmeta import export as export_lib


def _write(path: str) -> None:
    os.makedirs(path)
    open(os.path.join(path, "saved_model.pb"), "w").close()


@pytest.mark.parametrize("version", [True, False, 0, -1, 2.0, "3", "../../x", 10**18, 10**5000],
                         ids=["true", "false", "zero", "negative", "float", "digit-string", "path", "past-int64", "5000-digits"])
def test_version_that_is_no_positive_integer_is_refused_before_writing(tmp_path, version):
    base = tmp_path / "m"
    with pytest.raises(ValueError, match="`version` must be a positive integer"):
        export_lib.write_version(str(base), _write, {}, version=version)
    assert not base.exists() or os.listdir(base) == []
    assert not (tmp_path / "x").exists()


def test_numpy_integer_version_is_accepted_and_an_existing_one_refused(tmp_path):
    base = str(tmp_path / "m")
    path = export_lib.write_version(base, _write, {}, version=np.int64(3))
    assert path == os.path.join(base, "3")
    assert json.load(open(os.path.join(path, export_lib.METADATA_FILE)))["tfmeta_version"]
    with pytest.raises(FileExistsError, match="`version`=3 already exists"):
        export_lib.write_version(base, _write, {}, version=3)


def test_files_named_like_versions_are_skipped_not_looped_on(tmp_path):
    base = tmp_path / "m"
    base.mkdir()
    (base / "1").write_text("not a model")  # a regular file named like a version
    (base / ("7" * 200)).write_text("")      # a name too long to be TF Serving's int64
    (base / "0").mkdir()                     # no version: versions start at 1
    assert export_lib.existing_versions(str(base)) == []
    first = export_lib.write_version(str(base), _write, {})
    second = export_lib.write_version(str(base), _write, {})
    assert (first, second) == (str(base / "2"), str(base / "3"))
    assert export_lib.existing_versions(str(base)) == [2, 3]
    assert (base / "1").read_text() == "not a model"


def test_killed_exports_temporary_folder_is_removed_by_the_next_export(tmp_path):
    base = tmp_path / "m"
    base.mkdir()
    # A process that dies at once: its pid is gone when the next export looks.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = base / f".tmp-{int(dead.stdout)}-deadbeef"
    _write(str(stale))
    live = base / f".tmp-{os.getppid()}-cafecafe"  # a living process's export in progress
    _write(str(live))
    export_lib.write_version(str(base), _write, {})
    assert not stale.exists(), "the killed export's folder survived the next export"
    assert live.exists(), "a running export's folder was removed"
    assert export_lib.existing_versions(str(base)) == [1]
