import numpy as np
from helpers import make_noise

from es_mpi.core.noise import _BLOCK, fill_noise, noise_fingerprint, sample_offsets


def test_table_regenerates_identically_from_its_seed():
    a, b = make_noise(100_000, 7), make_noise(100_000, 7)
    assert a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.array_equal(a, make_noise(100_000, 8))


def test_table_does_not_depend_on_block_split():
    size = _BLOCK + 1000  # crosses one block boundary
    whole = np.random.Generator(np.random.PCG64(5)).standard_normal(size, dtype=np.float32)
    blocked = np.empty(size, np.float32)
    fill_noise(blocked, 5)
    assert np.array_equal(whole, blocked)


def test_table_is_standard_normal():
    t = make_noise(1_000_000, 1)
    assert abs(t.mean()) < 0.01 and abs(t.std() - 1) < 0.01


def test_any_perturbation_regenerates_from_its_offset_alone():
    table = make_noise(50_000, 3)
    offsets = sample_offsets(np.random.default_rng(0), 100, table.size, 1000)
    again = make_noise(50_000, 3)
    for k in offsets:
        assert np.array_equal(table[k : k + 1000], again[k : k + 1000])


def test_offsets_stay_inside_the_table():
    offsets = sample_offsets(np.random.default_rng(1), 20_000, 1010, 1000)
    assert offsets.min() == 0 and offsets.max() == 10  # both ends reachable, none past len - dim


def test_fingerprint_tells_tables_apart():
    assert noise_fingerprint(make_noise(20_000, 1)) == noise_fingerprint(make_noise(20_000, 1))
    assert noise_fingerprint(make_noise(20_000, 1)) != noise_fingerprint(make_noise(20_000, 2))
