"""The rollout/GLCA figure: colours, heat map placement, outlines, panel and grid sizes."""

import numpy as np
from PIL import Image

from dcal.data.transform_geometry import input_view
from dcal.viz.attention_map import attention_panel, display_size, draw_box, heat_overlay, model_view, outline_patches
from dcal.viz.colormap import INFERNO_ANCHORS, heat_colors
from dcal.viz.figure_grid import CAPTION_HEIGHT, grid


def _luminance(rgb):
    return rgb @ np.array([0.299, 0.587, 0.114])


def test_heat_colors_run_from_dark_to_bright_through_the_anchors():
    values = np.linspace(0, 1, 101)
    colors = heat_colors(values).astype(float)
    assert colors[0].tolist() == INFERNO_ANCHORS[0].tolist() and colors[-1].tolist() == INFERNO_ANCHORS[-1].tolist()
    assert colors[50].tolist() == INFERNO_ANCHORS[4].tolist()  # 0.5 is the middle anchor
    assert np.all(np.diff(_luminance(colors)) > -1.0)  # brighter with the value (to rounding)
    assert heat_colors(np.array([-3.0, 7.0])).tolist() == heat_colors(np.array([0.0, 1.0])).tolist()


def test_heat_is_brightest_over_the_patch_with_the_largest_rollout():
    rollout = np.zeros((4, 4))
    rollout[2, 1] = 1.0
    picture = Image.new("RGB", (64, 64), (0, 0, 0))
    heat = np.asarray(heat_overlay(picture, rollout, alpha=1.0)).astype(float)
    row, col = np.unravel_index(np.argmax(_luminance(heat)), heat.shape[:2])
    assert (row // 16, col // 16) == (2, 1)


def test_outline_surrounds_the_selected_region_not_the_edges_between_selected_patches():
    picture = Image.new("RGB", (40, 40), (0, 0, 0))
    outlined = np.asarray(outline_patches(picture, (4, 4), [5, 6], width=1))  # row 1, columns 1 and 2
    cyan = np.all(outlined == (0, 255, 255), axis=-1)
    assert cyan[10, 10:30].all() and cyan[19, 10:30].all()  # top and bottom edges of the 2-patch region
    assert cyan[10:20, 10].all() and cyan[10:20, 29].all()  # left and right ends
    assert not cyan[12:18, 19].any() and not cyan[12:18, 20].any()  # no line between the two patches
    assert cyan.sum() == 2 * 20 + 2 * 10 - 4


def test_panel_shows_image_and_heat_side_by_side_with_a_caption():
    picture = Image.new("RGB", (48, 32), (10, 20, 30))
    panel = attention_panel(picture, np.arange(6.0), (2, 3), [5], caption="a caption")
    assert panel.size == (96, 32 + CAPTION_HEIGHT)
    assert np.asarray(panel)[CAPTION_HEIGHT + 5, 5].tolist() == [10, 20, 30]


def test_model_view_cuts_the_centre_crop_and_draw_box_lands_on_it():
    # A 100x80 image, Resize((40, 50)) -> 50x40, CenterCrop(32): the model sees image x 18..82, y 8..72.
    pixels = np.zeros((80, 100, 3), dtype=np.uint8)
    pixels[8:72, 18:82] = 200
    view = input_view((100, 80), (40, 50), (32, 32))
    size = display_size(view.input_size)
    assert size == (256, 256)
    shown = np.asarray(model_view(Image.fromarray(pixels), view, size))
    assert shown.min() > 150  # only the grey region the model saw
    boxed = np.asarray(draw_box(Image.new("RGB", size), view, (50, 40, 16, 16), width=1))
    white = np.all(boxed == 255, axis=-1)
    # image (50, 40) is input ((50 - 18) / 2, (40 - 8) / 2) = (16, 16), shown x8 at (128, 128); 16 px -> 64 shown;
    # the outline is drawn just outside the box
    assert white[127, 127:193].all() and white[127:193, 127].all() and white[192, 127:193].all()
    assert not white[128:192, 128:192].any()


def test_grid_places_cells_in_rows():
    pictures = [Image.new("RGB", (10, 20), (i * 40, 0, 0)) for i in range(5)]
    canvas = grid(pictures, columns=2, gap=2)
    assert canvas.size == (2 * 12 + 2, 3 * 22 + 2)
    assert np.asarray(canvas)[2 + 22 * 2, 2].tolist() == [160, 0, 0]  # fifth picture: row 2, column 0
