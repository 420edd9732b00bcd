from hypothesis import given, strategies as st

from logllm_plugin.featurize import windows


@given(st.integers(min_value=1, max_value=2000), st.integers(min_value=2, max_value=300))
def test_windows_cover_every_line_and_fit_the_head(length, max_positions):
    spans = windows(length, max_positions)
    covered = set()
    for start, end in spans:
        assert 0 <= start < end <= length and end - start <= max_positions
        covered.update(range(start, end))
    assert covered == set(range(length))


def test_a_sequence_that_fits_is_one_window():
    assert windows(15, 256) == [(0, 15)]
