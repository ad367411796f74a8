"""A semantic map painted as the extension paints OneFormer's: OneFormer's demo Visualizer (detectron2's,
as the extension vendors it) with `is_img=False`, `draw_sem_seg(alpha=1, is_text=False)`, through
matplotlib's Agg canvas — a white figure the size of the image, then every class present, largest area
first: a hole-free region as filled polygons (OpenCV's contours + 0.5, three points or more) edged in
white, a region with holes as an RGBA image of its mask without edge."""

from __future__ import annotations

import cv2
import numpy as np

WHITE = (1.0, 1.0, 1.0)  # the demo Visualizer's _OFF_WHITE is plain white (detectron2's own is 255/255/240)


def draw_sem_seg(classes: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 RGB, as Visualizer(img, is_img=False).draw_sem_seg(classes, alpha=1, is_text=False)."""
    import matplotlib.colors as mplc
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Polygon

    h, w = classes.shape
    figure = Figure(frameon=False)
    dpi = figure.get_dpi()
    figure.set_size_inches((w + 1e-2) / dpi, (h + 1e-2) / dpi)  # VisImage: + 1e-2 against truncation
    canvas = FigureCanvasAgg(figure)
    ax = figure.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.axis("off")
    ax.imshow(np.full((h, w, 3), 255, np.uint8), extent=(0, w, h, 0), interpolation="nearest")
    linewidth = max(max(np.sqrt(h * w) // 90, 10) // 15, 1)  # _default_font_size // 15 · scale, at least 1
    labels, areas = np.unique(classes, return_counts=True)
    for label in labels[np.argsort(-areas)].tolist():
        if label >= len(palette):
            continue
        colour = mplc.to_rgb([c / 255 for c in palette[label]])
        mask = (classes == label).astype(np.uint8)
        contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
        if hierarchy is None:
            continue
        if (hierarchy.reshape(-1, 4)[:, 3] >= 0).sum() > 0:  # holes: drawn as an image of the mask
            rgba = np.zeros((h, w, 4), np.float32)
            rgba[:, :, :3] = colour
            rgba[:, :, 3] = (mask == 1).astype(np.float32)
            ax.imshow(rgba, extent=(0, w, h, 0))
            continue
        for contour in contours:
            points = contour.flatten()
            if len(points) < 6:
                continue
            ax.add_patch(Polygon((points + 0.5).reshape(-1, 2), fill=True, facecolor=(*colour, 1.0),
                                 edgecolor=(*WHITE, 1), linewidth=linewidth))
    buffer, (width, height) = canvas.print_to_buffer()
    return np.frombuffer(buffer, np.uint8).reshape(height, width, 4)[:, :, :3].copy()
