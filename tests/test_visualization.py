"""The plotting helpers on tiny arrays: shapes, ranges, all-zero and signed maps."""
import os

import numpy as np
import pytest
from matplotlib.figure import Figure

from attrkit.figures import plots as V


# ------------------------------------------------------------ aggregate / normalize

def test_aggregate_sums_channels_single_and_batch():
    a = np.arange(24, dtype=float).reshape(2, 2, 2, 3)
    batch = V.aggregate_attribution(a)
    assert batch.shape == (2, 2, 2)
    assert batch[0, 0, 0] == 0 + 1 + 2 and batch[1, 1, 1] == 21 + 22 + 23
    np.testing.assert_array_equal(V.aggregate_attribution(a[1]), batch[1])


def test_aggregate_keeps_sign_and_passes_per_pixel_maps_through():
    a = np.array([[[1.0, -3.0, 0.5]]])           # [1, 1, 3]: one pixel, three channels
    assert V.aggregate_attribution(a).tolist() == [[-1.5]]
    m = np.random.default_rng(0).normal(size=(4, 5))
    np.testing.assert_array_equal(V.aggregate_attribution(m), m)
    maps = np.random.default_rng(1).normal(size=(2, 4, 5))   # [N, H, W], W not a channel
    np.testing.assert_array_equal(V.aggregate_attribution(maps), maps)
    narrow = np.ones((2, 4, 3))                   # ambiguous: batched=True says [N, H, W]
    assert V.aggregate_attribution(narrow).shape == (2, 4)
    assert V.aggregate_attribution(narrow, batched=True).shape == (2, 4, 3)


def test_aggregate_rejects_bad_input():
    with pytest.raises(ValueError, match="attr: expected an array with 2, 3 or 4"):
        V.aggregate_attribution(np.ones(5))
    with pytest.raises(ValueError, match="attr: expected finite values, got 1 NaN"):
        V.aggregate_attribution(np.array([[1.0, np.nan]]))
    with pytest.raises(TypeError, match="numeric"):
        V.aggregate_attribution(np.array([["a", "b"]]))


def test_normalize_abs_then_min_max_by_hand():
    a = np.array([[-4.0, 2.0], [1.0, 0.0]])       # |a| = 4, 2, 1, 0 -> /4
    np.testing.assert_allclose(V.normalize_attribution(a), [[1.0, 0.5], [0.25, 0.0]])
    b = np.array([[-3.0, 5.0], [2.0, 3.0]])       # |b| = 3, 5, 2, 3 -> (x - 2) / 3
    np.testing.assert_allclose(V.normalize_attribution(b), [[1 / 3, 1.0], [0.0, 1 / 3]])


def test_normalize_all_zero_and_constant_give_zeros():
    for arr in (np.zeros((3, 3)), np.full((3, 3), -7.0), np.zeros((2, 3, 3, 3))):
        out = V.normalize_attribution(arr)
        assert out.shape == arr.shape
        assert np.all(out == 0) and not np.isnan(out).any()


def test_normalize_is_per_image_in_a_batch():
    rng = np.random.default_rng(0)
    batch = np.stack([rng.normal(size=(4, 4)), 100 * rng.normal(size=(4, 4)),
                      np.zeros((4, 4))])
    out = V.normalize_attribution(batch)
    assert out.shape == batch.shape
    assert out[0].max() == 1 and out[1].max() == 1 and out[0].min() == 0
    assert np.all(out[2] == 0)
    for i in range(2):
        np.testing.assert_allclose(out[i], V.normalize_attribution(batch[i]))
    chans = rng.normal(size=(2, 4, 4, 3))
    out4 = V.normalize_attribution(chans)
    np.testing.assert_allclose(out4[1], V.normalize_attribution(chans[1]))
    assert out4.min() >= 0 and out4.max() <= 1


# ------------------------------------------------------------- highlight_top_pixels

def _image(h=8, w=8, dtype=np.uint8):
    rng = np.random.default_rng(3)
    return rng.integers(50, 256, size=(h, w, 3)).astype(dtype)


def test_highlight_top_pixels_keeps_top_pixels_and_dims_the_rest():
    img = _image()
    attr = np.zeros((8, 8))
    top = [(1, 2), (5, 5), (7, 0), (3, 6)]
    for k, (i, j) in enumerate(top):
        attr[i, j] = -(10.0 + k) if k % 2 else 10.0 + k    # sign must not matter
    out = V.highlight_top_pixels(img, attr, threshold=90, blur=0, background=0.25)
    assert out.shape == img.shape and out.dtype == np.uint8
    keep = np.zeros((8, 8), bool)
    keep[tuple(zip(*top))] = True
    np.testing.assert_array_equal(out[keep], img[keep])
    np.testing.assert_array_equal(out[~keep], np.rint(img[~keep] * 0.25).astype(np.uint8))


def test_highlight_top_pixels_percentile_keeps_that_share_of_pixels():
    img = _image(10, 10, np.float32)
    attr = np.arange(100, dtype=float).reshape(10, 10, 1) + 1     # distinct magnitudes
    out = V.highlight_top_pixels(img, attr, threshold=70, blur=0, background=0.0)
    assert out.dtype == np.float32
    kept = np.all(out == img, axis=-1)
    assert kept.sum() == 30 and np.all(out[~kept] == 0)
    assert kept.ravel()[-30:].all()               # the 30 largest


def test_highlight_top_pixels_fraction_mode_and_positive_only():
    img = _image(1, 4)
    attr = np.array([[[1.0], [-9.0], [5.0], [10.0]]])
    # magnitudes 1, 9, 5, 10 -> min-max (x - 1) / 9 = 0, 0.89, 0.44, 1
    frac = V.highlight_top_pixels(img, attr, threshold=0.4, mode="fraction", blur=0, background=0)
    assert np.all(frac[0, [1, 2, 3]] == img[0, [1, 2, 3]]) and np.all(frac[0, 0] == 0)
    # positive part 1, 0, 5, 10 -> 0.1, 0, 0.5, 1
    pos = V.highlight_top_pixels(img, attr, threshold=0.4, mode="fraction", blur=0, background=0,
                        positive_only=True)
    assert np.all(pos[0, [2, 3]] == img[0, [2, 3]]) and np.all(pos[0, [0, 1]] == 0)


def test_highlight_top_pixels_all_zero_attribution_dims_everything():
    img = _image()
    out = V.highlight_top_pixels(img, np.zeros((8, 8, 3)), background=0.5)
    np.testing.assert_array_equal(out, np.rint(img * 0.5).astype(np.uint8))


def test_highlight_top_pixels_blur_joins_neighbours_of_a_peak():
    img = np.full((15, 15, 3), 200, np.uint8)
    attr = np.zeros((15, 15))
    attr[7, 7] = 1.0
    sharp = np.all(V.highlight_top_pixels(img, attr, threshold=0.5, mode="fraction", blur=0,
                                 background=0) == 200, axis=-1)
    blurred = np.all(V.highlight_top_pixels(img, attr, threshold=0.5, mode="fraction", blur=2,
                                   background=0) == 200, axis=-1)
    assert sharp.sum() == 1 and blurred.sum() > 1 and blurred[7, 7]


def test_highlight_top_pixels_batch_matches_single():
    rng = np.random.default_rng(5)
    imgs = rng.uniform(0, 255, size=(2, 9, 9, 3))
    attrs = rng.normal(size=(2, 9, 9, 3))
    out = V.highlight_top_pixels(imgs, attrs)
    assert out.shape == imgs.shape
    for i in range(2):
        np.testing.assert_array_equal(out[i], V.highlight_top_pixels(imgs[i], attrs[i]))


def test_highlight_top_pixels_clear_errors():
    img = _image()
    with pytest.raises(ValueError, match=r"attribution: expected the image's height and "
                                         r"width \(8, 8\).*got shape \(8, 7\)"):
        V.highlight_top_pixels(img, np.ones((8, 7)))
    with pytest.raises(ValueError, match=r"image: expected an RGB image"):
        V.highlight_top_pixels(np.ones((8, 8)), np.ones((8, 8)))
    with pytest.raises(ValueError, match=r"threshold: expected a number in \[0, 100\]"):
        V.highlight_top_pixels(img, np.ones((8, 8)), threshold=120)
    with pytest.raises(ValueError, match=r"threshold: expected a number in \[0, 1\]"):
        V.highlight_top_pixels(img, np.ones((8, 8)), threshold=80, mode="fraction")
    with pytest.raises(ValueError, match="mode: expected one of"):
        V.highlight_top_pixels(img, np.ones((8, 8)), mode="top")
    with pytest.raises(ValueError, match="background"):
        V.highlight_top_pixels(img, np.ones((8, 8)), background=2)


# ------------------------------------------------------------------ magnitude_cloud

@pytest.mark.parametrize("keep", [0.05, 0.1, 0.25, 1.0])
def test_magnitude_cloud_sparsity_follows_keep(keep):
    attr = np.random.default_rng(0).normal(size=(20, 20, 3))
    cloud = V.magnitude_cloud(attr, keep=keep)
    assert cloud.shape == (20, 20) and cloud.min() >= 0 and cloud.max() == 1
    assert np.count_nonzero(cloud) == round(keep * 400)
    mag = np.abs(attr.sum(-1))
    drawn = cloud > 0
    assert mag[drawn].min() >= mag[~drawn].max() if keep < 1 else drawn.all()


def test_magnitude_cloud_brightness_follows_magnitude_and_clips():
    attr = np.array([[0.0, 1.0, 2.0, 4.0]])
    np.testing.assert_allclose(V.magnitude_cloud(attr, keep=1.0, clip=100), [[0, .25, .5, 1]])
    clipped = V.magnitude_cloud(attr, keep=1.0, clip=50)    # median of drawn [1, 2, 4] is 2
    np.testing.assert_allclose(clipped, [[0, 0.5, 1.0, 1.0]])


def test_magnitude_cloud_white_background_all_zero_and_errors():
    attr = np.random.default_rng(1).normal(size=(10, 10))
    np.testing.assert_allclose(V.magnitude_cloud(attr, background="white"),
                               1 - V.magnitude_cloud(attr))
    assert np.all(V.magnitude_cloud(np.zeros((6, 6, 3))) == 0)
    assert np.all(V.magnitude_cloud(np.zeros((6, 6)), background="white") == 1)
    with pytest.raises(ValueError, match=r"keep: expected a number in \(0, 1\]"):
        V.magnitude_cloud(attr, keep=0)
    with pytest.raises(ValueError, match="background: expected one of"):
        V.magnitude_cloud(attr, background="grey")
    with pytest.raises(ValueError, match="attribution: expected an array with 2"):
        V.magnitude_cloud(np.ones((2, 4, 4, 3)))


def test_rich_helpers_have_their_own_names():
    """The course's binary_mask and point_cloud live in hw3_utils; these are ours."""
    assert not hasattr(V, "binary_mask") and not hasattr(V, "point_cloud")
    assert callable(V.highlight_top_pixels) and callable(V.magnitude_cloud)


# --------------------------------------------------------------------------- titles

def test_panel_title_shortens_synonyms_and_says_correct():
    t = V.panel_title("Saliency", 354, "Arabian camel, dromedary, Camelus dromedarius",
                      "weasel")
    assert t.splitlines() == ["Saliency, image 354", "true: Arabian camel",
                              "pred: weasel (incorrect)"]
    ok = V.panel_title("IG", 7, "goldfish, Carassius auratus", "goldfish, Carassius auratus")
    assert ok.endswith("pred: goldfish (correct)")
    assert "(incorrect)" in V.panel_title("IG", 7, "a", "a", correct=False)


# -------------------------------------------------------------------------- figures

def _axes_titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.axison]


def test_plot_signed_symmetric_limits_and_all_zero():
    fig = Figure()
    ax = fig.subplots()
    im = V.plot_signed(ax, np.array([[-1.0, 3.0], [0.5, 0.0]]), title="signed")
    assert im.get_clim() == (-3.0, 3.0) and im.get_cmap().name == "seismic"
    im0 = V.plot_signed(fig.add_subplot(2, 1, 2), np.zeros((2, 2, 3)))
    assert im0.get_clim() == (-1.0, 1.0)
    assert ax.get_title() == "signed"


def test_plot_row_titles_every_panel_and_picks_modes():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, size=(6, 6, 3))
    signed, positive = rng.normal(size=(6, 6, 3)), rng.uniform(size=(6, 6))
    fig = V.plot_row(img, [signed, positive, positive], ["in", "a", "b", "c"])
    assert isinstance(fig, Figure)
    assert _axes_titles(fig) == ["in", "a", "b", "c"]
    cmaps = [ax.images[0].get_cmap().name for ax in fig.axes[1:]]
    assert cmaps[0] == "seismic" and cmaps[1] == "hot"
    assert _axes_titles(V.plot_row(img, [positive], ["only map"])) == ["input", "only map"]
    with pytest.raises(ValueError, match="titles: expected 3 or 2 entries, got 1"):
        V.plot_row(img, [signed, positive], ["x"])


def test_comparison_figure_layout_and_titles():
    rng = np.random.default_rng(0)
    imgs = [rng.uniform(0, 255, size=(8, 8, 3)) for _ in range(2)]
    attrs = [rng.normal(size=(8, 8, 3)) for _ in range(2)]
    infos = [dict(index=11, true_name="zebra", pred_name="zebra"),
             dict(index=12, true_name="goldfish, Carassius auratus", pred_name="zebra",
                  note="expert inactive on the data")]
    per_method = {m: list(zip(imgs, attrs, infos)) for m in ("Saliency", "IG", "Expert")}
    fig = V.comparison_figure(per_method, by_image=True)
    titles = _axes_titles(fig)
    assert len(titles) == 2 * 3 * 3
    assert all(t for t in titles)
    assert titles[0].startswith("Saliency: input, image 11")
    assert titles[1].startswith("Saliency: point cloud") and titles[3].startswith("IG: input")
    assert "(correct)" in titles[0] and "(incorrect)" in titles[9 + 2]
    assert "true: goldfish" in titles[9] and "inactive" in titles[9]
    rows = V.comparison_figure([("SM", imgs[0], attrs[0], "hand-made title")])
    assert len(_axes_titles(rows)) == 3
    assert _axes_titles(rows)[2] == "SM: binary mask, hand-made title"


def test_comparison_figure_panels_are_the_rich_helpers():
    rng = np.random.default_rng(2)
    img, attr = rng.uniform(0, 255, size=(8, 8, 3)), rng.normal(size=(8, 8, 3))
    fig = V.comparison_figure([("SM", img, attr, None)], cloud_kwargs={"keep": 0.5},
                              mask_kwargs={"threshold": 50, "blur": 0})
    cloud, mask = (ax.images[0].get_array() for ax in fig.axes[1:3])
    np.testing.assert_allclose(cloud, V.magnitude_cloud(attr, keep=0.5))
    shown = np.clip(V.highlight_top_pixels(img, attr, threshold=50, blur=0), 0, 255)
    np.testing.assert_array_equal(mask, shown.astype(np.uint8))


# --------------------------------------------------------------------------- saving

def test_save_figure_writes_png_atomically(tmp_path):
    fig = V.plot_row(np.zeros((4, 4, 3)), [np.ones((4, 4))], ["a", "b"])
    path = tmp_path / "sub" / "fig.png"
    assert V.save_figure(fig, path) == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(path.parent) == ["fig.png"]          # no temporary file left


class _Boom(Exception):
    pass


class _FailingFigure:
    def savefig(self, handle, **kwargs):
        handle.write(b"partial")
        raise _Boom("disk full")


def test_failed_save_leaves_no_file_and_keeps_the_old_one(tmp_path):
    with pytest.raises(_Boom):
        V.save_figure(_FailingFigure(), tmp_path / "new.png")
    assert os.listdir(tmp_path) == []
    old = tmp_path / "old.png"
    old.write_bytes(b"old contents")
    with pytest.raises(_Boom):
        V.save_figure(_FailingFigure(), old)
    assert os.listdir(tmp_path) == ["old.png"] and old.read_bytes() == b"old contents"
