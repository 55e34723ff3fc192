"""``python -m napari_corrtomo``: napari with the sample correlative data and every dock widget."""

from __future__ import annotations


def open_viewer(show: bool = True):
    import napari
    from npe2 import PluginManager
    from qtpy.QtCore import QTimer

    viewer = napari.Viewer(title="napari-corrtomo", show=show)
    viewer.open_sample("napari-corrtomo", "correlative_particles")
    manifest = PluginManager.instance().get_manifest("napari-corrtomo")
    docks = []
    for widget in manifest.contributions.widgets or []:
        dock, _ = viewer.window.add_plugin_dock_widget("napari-corrtomo", widget.display_name)
        docks.append(dock)
    if docks:  # they open as tabs (widgets/_dock.py): the first one in front once shown
        QTimer.singleShot(0, docks[0].raise_)
    return viewer


if __name__ == "__main__":
    import napari

    open_viewer()
    napari.run()
