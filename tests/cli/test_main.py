import numpy as np

from napari_corrtomo.cli import main
from napari_corrtomo.core import io

# The full demo run is checked in tests/test_demo.py (it runs once there).


def test_info_and_clear_failure(tmp_path, capsys):
    io.write_tiff(tmp_path / "v.tif", np.zeros((3, 4, 5), np.float32), (2, 1, 1), "nm")
    assert main(["info", str(tmp_path / "v.tif")]) == 0
    assert "voxel 2 x 1 x 1 nm" in capsys.readouterr().out
    (tmp_path / "bad.mrc").write_bytes(b"junk")
    assert main(["info", str(tmp_path / "bad.mrc")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("corrtomo info: error: bad.mrc")


def test_demo_failure_exits_nonzero(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["demo", "--out", str(blocker / "sub")]) == 1
    assert "error" in capsys.readouterr().err
