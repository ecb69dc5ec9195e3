import numpy as np

from es_mpi.core.obs_stats import CLIP, ObsStats, accumulate, normalise


def test_merged_statistics_equal_one_pass_statistics():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(rng.integers(1, 50), 4)) for _ in range(20)]
    merged = ObsStats(0.0, np.zeros(4), np.zeros(4))
    for c in chunks:
        merged = merged.add(accumulate(c))
    everything = np.concatenate(chunks)
    mean, std = merged.mean_std()
    np.testing.assert_allclose(mean, everything.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std, everything.std(axis=0), rtol=1e-4)
    assert merged.count == len(everything)


def test_pack_roundtrip():
    s = accumulate(np.arange(12.0).reshape(4, 3))
    t = ObsStats.unpack(s.pack())
    assert t.count == s.count and np.array_equal(t.total, s.total) and np.array_equal(t.total_sq, s.total_sq)


def test_constant_features_do_not_explode():
    s = ObsStats.empty(2).add(accumulate(np.ones((100, 2))))
    mean, std = s.mean_std()
    assert np.all(std >= 0.1)
    assert np.all(np.abs(normalise(np.array([1e6, -1e6]), mean, std)) <= CLIP)
