"""The PatchCore memory-bank core (baselines.anomaly.patchcore): the greedy coreset against a plain
transcription of greedy k-center, chunked nearest neighbours against torch.cdist, the reweighted
image score against a transcription of the published formula, both map blurs against their
definitions, the projection's JL dimension, and the MemoryBank end to end on tiny inputs."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image, ImageFilter  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402
from sklearn.random_projection import (  # noqa: E402
    SparseRandomProjection, johnson_lindenstrauss_min_dim)

from baselines.anomaly import patchcore as pc  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True, scope="module")
def _two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(min(2, previous))
    yield
    torch.set_num_threads(previous)


# --- greedy coreset ----------------------------------------------------------------------------

def reference_greedy(x: np.ndarray, n_select: int) -> list[int]:
    """Greedy k-center written out row by row: start at 0, keep each row's distance to the
    selected set, select the farthest (first on ties), zero it."""
    rows = len(x)
    min_d = [np.linalg.norm(x[i] - x[0]) for i in range(rows)]
    selected, last = [0], 0
    for _ in range(n_select - 1):
        for i in range(rows):
            min_d[i] = min(min_d[i], np.linalg.norm(x[i] - x[last]))
        best = 0
        for i in range(1, rows):
            if min_d[i] > min_d[best]:
                best = i
        min_d[best] = 0.0
        selected.append(best)
        last = best
    return selected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_select", [1, 2, 7, 30, 59])
def test_greedy_coreset_equals_reference(dtype, n_select):
    x = np.random.default_rng(1).normal(size=(60, 5)).astype(dtype)
    got = pc.greedy_coreset(torch.from_numpy(x), n_select)
    assert got.dtype == torch.int64 and got.device.type == "cpu"
    assert got.tolist() == reference_greedy(x, n_select)
    assert len(set(got.tolist())) == n_select


def test_greedy_coreset_ties_take_first_index():
    x = np.random.default_rng(2).normal(size=(60, 5)).astype(np.float32)
    x[7] = x[40] = 10.0  # the farthest rows, tied: the first one (7) is selected
    x[12] = x[0]  # a duplicate of the start row: distance 0, selected last if at all
    x[30] = x[50] = x[51] = -9.0
    want = reference_greedy(x, 20)
    got = pc.greedy_coreset(torch.from_numpy(x), 20).tolist()
    assert got == want
    assert got[1] == 7 and 40 not in got
    assert 30 in got and 50 not in got and 51 not in got


def test_greedy_coreset_all_rows_and_chunking_and_progress():
    x = torch.from_numpy(np.random.default_rng(3).normal(size=(60, 5)).astype(np.float32))
    assert pc.greedy_coreset(x, 60).tolist() == list(range(60))
    assert pc.greedy_coreset(x, 100).tolist() == list(range(60))
    calls: list[int] = []
    chunked = pc.greedy_coreset(x, 45, chunk_rows=7, progress=calls.append)
    assert chunked.tolist() == pc.greedy_coreset(x, 45).tolist()
    assert sum(calls) == 44 and len(calls) >= 10  # every new selection reported, in steps
    with pytest.raises(ValueError):
        pc.greedy_coreset(x, 0)


def test_greedy_coreset_half_on_well_separated_input():
    # Points whose greedy choices are decided by wide margins, so float16 changes nothing.
    # 12 rows on distinct axes with radii 1.5 ** k (greedy takes them from the largest down,
    # each 1.5 x the next), in random order among 28 small rows near the origin (row 0).
    rng = np.random.default_rng(4)
    x = rng.uniform(-0.1, 0.1, size=(40, 12)).astype(np.float32)
    x[0] = 0.0
    rows = rng.permutation(np.arange(1, 40))[:12]
    for k, row in enumerate(rows):
        x[row, k] = 1.5 ** (k + 1)
    n_select = 12
    want = reference_greedy(x.astype(np.float64), n_select)
    # precondition: at every step the farthest row beats the runner-up by > 1 %
    min_d = np.linalg.norm(x - x[0], axis=1).astype(np.float64)
    for chosen in want[1:]:
        top2 = np.sort(min_d)[-2:]
        assert top2[1] > 1.01 * top2[0] and np.argmax(min_d) == chosen
        min_d = np.minimum(min_d, np.linalg.norm(x - x[chosen], axis=1))
    got = pc.greedy_coreset(torch.from_numpy(x), n_select, half=True)
    assert got.tolist() == want


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_greedy_coreset_cuda_matches_cpu():
    x = torch.from_numpy(np.random.default_rng(5).normal(size=(500, 16)).astype(np.float32))
    assert pc.greedy_coreset(x, 50, device="cuda").tolist() == pc.greedy_coreset(x, 50).tolist()
    assert pc.greedy_coreset(x, 50, device="cuda", half=True).shape == (50,)


# --- nearest neighbours ------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("chunks", [(7, 11), (1, 1), (64, 3), (50, 70), (4096, 65536)])
def test_nearest_distances_equal_cdist(device, k, chunks):
    rng = np.random.default_rng(6)
    queries = torch.from_numpy(rng.normal(size=(50, 8)).astype(np.float32))
    bank = torch.from_numpy(rng.normal(size=(70, 8)).astype(np.float32))
    dist, index = pc.nearest_distances(queries, bank, k=k, device=device,
                                       query_chunk=chunks[0], bank_chunk=chunks[1])
    want_dist, want_index = torch.topk(torch.cdist(queries, bank), k, dim=1, largest=False)
    assert dist.shape == index.shape == (50, k)
    assert dist.dtype == torch.float32 and index.dtype == torch.int64
    assert dist.device.type == index.device.type == "cpu"
    torch.testing.assert_close(dist, want_dist, rtol=1e-5, atol=1e-5)
    assert torch.equal(index, want_index)
    if k == 1:
        torch.testing.assert_close(dist[:, 0], torch.cdist(queries, bank).min(dim=1).values,
                                   rtol=1e-5, atol=1e-5)
    assert bool((dist[:, 1:] >= dist[:, :-1]).all())


def test_nearest_distances_exact_matches_and_ties():
    rng = np.random.default_rng(7)
    bank = torch.from_numpy(rng.normal(size=(30, 6)).astype(np.float32))
    bank[20] = bank[4]  # a duplicate in a later bank chunk: the lower index wins the tie
    queries = bank[[4, 9, 25]].clone()
    dist, index = pc.nearest_distances(queries, bank, k=1, bank_chunk=8)
    assert dist[:, 0].tolist() == [0.0, 0.0, 0.0]  # identical rows are at exactly 0
    assert index[:, 0].tolist() == [4, 9, 25]
    dist3, index3 = pc.nearest_distances(queries[:1], bank, k=3, bank_chunk=8)
    assert index3[0, :2].tolist() == [4, 20] and dist3[0, 1].item() == 0.0
    with pytest.raises(ValueError):
        pc.nearest_distances(queries, bank, k=31)


def test_nearest_distances_float64_inputs():
    rng = np.random.default_rng(8)
    queries, bank = torch.from_numpy(rng.normal(size=(9, 5))), torch.from_numpy(
        rng.normal(size=(13, 5)))
    dist, index = pc.nearest_distances(queries, bank, k=2, query_chunk=4, bank_chunk=5)
    want_dist, want_index = torch.topk(torch.cdist(queries, bank), 2, dim=1, largest=False)
    assert dist.dtype == torch.float32
    torch.testing.assert_close(dist, want_dist.float(), rtol=1e-6, atol=1e-6)
    assert torch.equal(index, want_index)


# --- image score -------------------------------------------------------------------------------

def published_score(patch, patch_lib, n_reweight=3, epsilon=0.0):
    """The published compute_s_s_map scoring, written out with torch.cdist."""
    dist = torch.cdist(patch, patch_lib)
    min_val, min_idx = torch.min(dist, dim=1)
    s_idx = torch.argmax(min_val)
    s_star = torch.max(min_val)
    m_test = patch[s_idx].unsqueeze(0)
    m_star = patch_lib[min_idx[s_idx]].unsqueeze(0)
    w_dist = torch.cdist(m_star, patch_lib)
    _, nn_idx = torch.topk(w_dist, k=n_reweight, largest=False)
    m_star_knn = torch.linalg.norm(m_test - patch_lib[nn_idx[0, 1:]], dim=1)
    root_d = torch.sqrt(torch.tensor(patch.shape[1]))
    w = 1 - (torch.exp(s_star / root_d) / (torch.sum(torch.exp(m_star_knn / root_d)) + epsilon))
    return float(w * s_star)


@pytest.mark.parametrize("epsilon", [0.0, 1e-5])
@pytest.mark.parametrize("n_reweight", [3, 5])
def test_reweighted_image_score_equals_published(epsilon, n_reweight):
    rng = np.random.default_rng(9)
    bank = torch.from_numpy(rng.normal(size=(30, 4)).astype(np.float32))
    patches = torch.from_numpy(rng.normal(size=(10, 4)).astype(np.float32))
    patches[6] += 3.0  # a clear worst patch
    dist, index = pc.nearest_distances(patches, bank)
    got = pc.reweighted_image_score(patches, dist[:, 0], index[:, 0], bank,
                                    n_reweight=n_reweight, denominator_epsilon=epsilon)
    want = published_score(patches, bank, n_reweight, epsilon)
    assert got == pytest.approx(want, rel=1e-5)
    # by hand: the score is w * s*, with w < 1, so it is below the largest patch distance
    assert 0 < got < float(dist.max())
    # the (N, k) form of the nearest-neighbour result is accepted too
    assert pc.reweighted_image_score(patches, dist, index, bank, n_reweight=n_reweight,
                                     denominator_epsilon=epsilon) == got


def test_reweighted_image_score_epsilon_changes_score():
    rng = np.random.default_rng(10)
    bank = torch.from_numpy(rng.normal(size=(20, 3)).astype(np.float32))
    patches = torch.from_numpy(rng.normal(size=(5, 3)).astype(np.float32)) * 2
    dist, index = pc.nearest_distances(patches, bank)
    plain = pc.reweighted_image_score(patches, dist, index, bank)
    with_eps = pc.reweighted_image_score(patches, dist, index, bank, denominator_epsilon=0.5)
    s_star = float(dist.max())
    # w = 1 - e / S  vs  1 - e / (S + 0.5): recover S from the first and check the second
    e = math.exp(s_star / math.sqrt(3))
    denominator = e / (1 - plain / s_star)
    assert with_eps == pytest.approx(s_star * (1 - e / (denominator + 0.5)), rel=1e-4)
    assert with_eps > plain


# --- maps --------------------------------------------------------------------------------------

def test_upsample_map_equals_interpolate():
    grid = np.random.default_rng(11).random((28, 28)).astype(np.float32)
    want = torch.nn.functional.interpolate(torch.from_numpy(grid)[None, None], size=(224, 224),
                                           mode="bilinear", align_corners=False)[0, 0].numpy()
    got = pc.upsample_map(grid)
    assert got.shape == (224, 224) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(pc.upsample_map(torch.from_numpy(grid)), want)
    np.testing.assert_allclose(pc.upsample_map(np.full((4, 7), 2.5), size=32), 2.5)


def test_blur_map_published_matches_definition():
    amap = (np.random.default_rng(12).random((40, 40)) * 3.7).astype(np.float32)
    amap[5, 5] = 0.0
    m = amap.max()
    levels = ((amap / m) * np.float32(255)).astype(np.uint8)  # to_pil_image: x * 255, truncate
    assert levels.max() == 255  # the max pixel becomes exactly 255
    image = Image.fromarray(levels)
    assert image.mode == "L"
    blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(4)))
    want = blurred.astype(np.float32) / 255 * m
    got = pc.blur_map_published(amap)
    assert got.shape == amap.shape and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    # quantised: at most 256 levels, each an integer multiple of m / 255
    steps = got / m * 255
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    assert len(np.unique(got)) <= 256
    assert not np.array_equal(pc.blur_map_published(amap, radius=1), got)


def test_blur_map_published_equals_torchvision_route():
    tv = pytest.importorskip("torchvision.transforms")
    amap = torch.from_numpy((np.random.default_rng(13).random((24, 24)) * 0.8)
                            .astype(np.float32))[None]
    # the published KNNGaussianBlur(4), on a (1, H, W) tensor
    map_max = amap.max()
    image = tv.ToPILImage()(amap[0] / map_max).filter(ImageFilter.GaussianBlur(radius=4))
    want = (tv.ToTensor()(image) * map_max)[0].numpy()
    np.testing.assert_array_equal(pc.blur_map_published(amap[0].numpy()), want)


def test_blur_map_published_zero_and_negative_maps():
    zero = np.zeros((16, 16), np.float32)
    got = pc.blur_map_published(zero)
    assert got.dtype == np.float32 and not got.any()
    with pytest.raises(ValueError):
        pc.blur_map_published(zero - 1)


def test_blur_map_float_equals_scipy():
    amap = np.random.default_rng(14).random((50, 50)).astype(np.float32)
    got = pc.blur_map_float(amap)
    want = gaussian_filter(amap.astype(np.float64), 4, mode="reflect", truncate=4.0)
    assert got.dtype == np.float32 and got.shape == amap.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert set(pc.BLURS) == {"published", "float"}
    assert pc.BLURS["float"] is pc.blur_map_float


# --- random projection -------------------------------------------------------------------------

def test_random_projection_dimensions():
    rng = np.random.default_rng(15)
    fpfh = torch.from_numpy(rng.random((2000, 33)).astype(np.float32))
    assert pc.projection_dim(2000) == johnson_lindenstrauss_min_dim(2000, eps=0.9) > 33
    assert pc.random_projection(fpfh) is None
    assert pc.random_projection(fpfh[:1]) is None  # JL dimension 0
    wide = rng.normal(size=(300, 1000)).astype(np.float32)
    got = pc.random_projection(torch.from_numpy(wide), seed=0)
    dim = johnson_lindenstrauss_min_dim(300, eps=0.9)
    assert got.shape == (300, dim) and got.dtype == torch.float32 and dim == pc.projection_dim(300)
    want = SparseRandomProjection(eps=0.9, random_state=0).fit_transform(wide)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    assert torch.equal(pc.random_projection(torch.from_numpy(wide), seed=0), got)
    assert not torch.equal(pc.random_projection(torch.from_numpy(wide), seed=1), got)


# --- MemoryBank --------------------------------------------------------------------------------

def _normal_patches(rng, n, d, loc=0.0, scale=1.0):
    return torch.from_numpy(rng.normal(loc, scale, size=(n, d)).astype(np.float32))


def test_memory_bank_flags_an_inserted_outlier():
    rng = np.random.default_rng(16)
    bank = pc.MemoryBank(coreset_fraction=0.1).fit(_normal_patches(rng, 400, 16))
    assert bank.describe()["n_selected"] == 40 and bank.projected_dim is None  # 16 < JL dim
    normal = _normal_patches(rng, 16, 16)
    outlier = normal.clone()
    outlier[9] = 6.0
    s_normal, grid_normal = bank.score(normal, (4, 4))
    s_outlier, grid_outlier = bank.score(outlier, (4, 4))
    assert grid_outlier.shape == (4, 4) and grid_outlier.dtype == np.float32
    assert s_outlier > s_normal > 0
    assert np.unravel_index(np.argmax(grid_outlier), (4, 4)) == (2, 1)
    assert grid_outlier[2, 1] > grid_normal[2, 1]
    # the grid is each patch's distance to its nearest bank row
    np.testing.assert_allclose(grid_outlier.ravel(),
                               torch.cdist(outlier, bank.bank).min(dim=1).values.numpy(),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        bank.score(normal, (3, 4))


def test_memory_bank_projection_and_full_bank():
    rng = np.random.default_rng(17)
    patches = _normal_patches(rng, 400, 200)
    bank = pc.MemoryBank(coreset_fraction=0.1, seed=3).fit(patches)
    assert bank.projected_dim == pc.projection_dim(400) < 200
    projected = pc.random_projection(patches, seed=3)
    assert torch.equal(bank.selected, pc.greedy_coreset(projected, 40))
    assert torch.equal(bank.bank, patches[bank.selected])  # the original rows are kept
    everything = pc.MemoryBank(coreset_fraction=1.0).fit(patches[:50])
    assert torch.equal(everything.bank, patches[:50]) and everything.projected_dim is None


def test_memory_bank_normalise_uses_full_bank_scalars():
    rng = np.random.default_rng(18)
    patches = _normal_patches(rng, 300, 12, loc=5.0, scale=3.0)
    bank = pc.MemoryBank(coreset_fraction=0.2, normalise=True).fit(patches)
    mean, std = torch.mean(patches), torch.std(patches)
    assert bank.mean == float(mean) and bank.std == float(std)
    assert torch.equal(bank.bank, ((patches - mean) / std)[bank.selected])
    test = _normal_patches(rng, 9, 12, loc=5.0, scale=3.0)
    score, grid = bank.score(test, (3, 3))
    normalised = (test - mean) / std
    want_grid = torch.cdist(normalised, bank.bank).min(dim=1).values.numpy().reshape(3, 3)
    np.testing.assert_allclose(grid, want_grid, rtol=1e-5, atol=1e-5)
    assert score == pytest.approx(published_score(normalised, bank.bank), rel=1e-5)
    described = bank.describe()
    assert described["mean"] == bank.mean and described["normalise"] is True


@pytest.mark.parametrize("normalise", [False, True])
def test_memory_bank_state_round_trip(normalise):
    rng = np.random.default_rng(19)
    bank = pc.MemoryBank(coreset_fraction=0.25, normalise=normalise, denominator_epsilon=1e-5,
                         seed=None).fit(_normal_patches(rng, 200, 8))
    buffer = io.BytesIO()
    torch.save(bank.state(), buffer)
    buffer.seek(0)
    restored = pc.MemoryBank.from_state(torch.load(buffer), device="cpu")
    test = _normal_patches(rng, 12, 8)
    s1, g1 = bank.score(test, (3, 4))
    s2, g2 = restored.score(test, (3, 4))
    assert s1 == s2
    np.testing.assert_array_equal(g1, g2)
    assert restored.describe() == bank.describe()
    assert json.loads(json.dumps(restored.describe()))["n_patches"] == 200
    # numpy round trip too (no torch.save)
    arrays = {key: value.numpy() for key, value in bank.state().items()}
    again = pc.MemoryBank.from_state({k: torch.from_numpy(np.asarray(v)) for k, v in
                                      arrays.items()})
    assert again.score(test, (3, 4))[0] == s1
