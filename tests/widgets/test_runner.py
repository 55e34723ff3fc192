"""Closing the viewer while a worker runs: the process exits within 2 s (real napari
process under the test's X display, window closed as by its close button)."""

import json
import subprocess
import sys
import textwrap
import time

import pytest

_CHILD = textwrap.dedent("""
    import json, sys, time
    import napari
    import numpy as np
    from qtpy.QtCore import QTimer
    from scipy import ndimage as ndi

    scenario = sys.argv[1]
    viewer = napari.Viewer()
    rng = np.random.default_rng(0)

    def say(**kw):
        print(json.dumps(kw), flush=True)

    def close(runner_busy, fraction):
        say(event="closing", t=time.time(), busy=runner_busy, fraction=fraction)
        viewer.window._qt_window.close()  # what the window's close button does

    def poll(cond, then, period=100):
        timer = QTimer()
        def tick():
            if cond():
                timer.stop()
                then()
        timer.timeout.connect(tick)
        timer.start(period)
        poll.keep.append(timer)
    poll.keep = []
    poll.predicting = False

    def later(ms, func):
        QTimer.singleShot(ms, func)

    if scenario == "fib_ml":
        from napari_corrtomo.widgets.fib import FibWidget
        seg = ndi.gaussian_filter(rng.random((48, 128, 128)), 3.0) > 0.5  # ~70 s of ML
        layer = viewer.add_labels(seg.astype(np.uint8), name="seg", scale=(10.0, 2.5, 2.5),
                                  units="nm")
        w = FibWidget(viewer)
        viewer.window.add_dock_widget(w)
        w.stack.set_layer(layer)
        w.source.setCurrentText("constant")
        w.constant.setValue(10.0)
        w.method.setCurrentText("ml")
        w.run_button.click()
        runner = w.runner
    else:
        from napari_corrtomo.widgets.classify import ClassifyWidget
        # predict: ~5 s of features (one at a time) and forest on this machine
        img = ndi.gaussian_filter(rng.random((16 if scenario == "predict" else 64, 256, 256)),
                                  2.0).astype(np.float32)
        viewer.add_image(img, name="img")
        w = ClassifyWidget(viewer)
        viewer.window.add_dock_widget(w)
        scr = w.create_scribble_layer()
        if scenario == "train":
            # strokes on many slices: features of every one, then a forest on ~45k voxels
            scr.data[::8, 40:80, 20:80] = 1
            scr.data[::8, 150:190, 100:170] = 2
        else:
            scr.data[10, 20:30, 20:40] = 1
            scr.data[10, 100:110, 100:140] = 2
        scr.refresh()
        w.train_button.click()
        runner = w.runner
        if scenario == "predict":
            def predict():
                w.predict_button.click()
                poll.predicting = True
            poll(lambda: w.classifier is not None and not w.runner.busy, predict)
        elif scenario == "live":
            def paint_more():
                scr.data[::8, 40:80, 20:80] = 1
                scr.data[::8, 150:190, 100:170] = 2
                scr.events.paint(value=[])  # what a brush stroke emits
            poll(lambda: w.classifier is not None and not w.runner.busy, paint_more)
            runner = None

    def started():
        if runner is None:
            return w._live_busy
        return runner.busy and runner.bar.maximum() > 1 and runner.bar.value() > 0 and (
            scenario != "predict" or poll.predicting)

    def go():
        later(800, lambda: close(
            bool(runner.busy if runner else w._live_busy),
            runner.bar.value() / runner.bar.maximum() if runner else None))

    poll(started, go, 50)
    napari.run()
    say(event="returned", t=time.time())
""")


@pytest.mark.parametrize("scenario", ["predict", "train", "live", "fib_ml"])
def test_closing_the_viewer_mid_work_ends_the_process_within_2_s(scenario):
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, scenario], stdout=subprocess.PIPE,
                            text=True)
    closing = None
    try:
        for line in proc.stdout:
            if line.startswith("{"):
                closing = json.loads(line)
                if closing["event"] == "closing":
                    break
        assert closing is not None, "the child never started its work"
        rest = proc.stdout.read()  # until the child closes its output: it is exiting
        proc.wait(timeout=60)
        exited = time.time()
    finally:
        proc.kill()
    elapsed = exited - closing["t"]
    returned = [json.loads(x) for x in rest.splitlines() if x.startswith("{")]
    print(f"{scenario}: worker busy at close {closing['busy']}, done "
          f"{closing['fraction']}, event loop ended "
          f"{returned[0]['t'] - closing['t'] if returned else float('nan'):.2f} s and the "
          f"process {elapsed:.2f} s after the close")
    assert closing["busy"]
    if closing["fraction"] is not None:
        assert closing["fraction"] < 0.5  # far from finished: the close cut it short
    assert proc.returncode == 0
    assert elapsed < 2.0
