"""Loss accounting: out of order is not loss, a second copy is a duplicate, a gap left open is."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.central.ingest.seqs import SeqTracker


def feed(tracker: SeqTracker, seqs: list[int]) -> None:
    for seq in seqs:
        tracker.observe("s", "a", seq)


@given(st.permutations(list(range(60))), st.lists(st.integers(0, 59), max_size=20))
def test_any_order_with_repeats_counts_only_the_repeats(order: list[int], again: list[int]):
    tracker = SeqTracker(settle=1000)
    feed(tracker, order + again)
    gw = tracker.gateways[("s", "a")]
    assert tracker.missing("s", "a") == 0
    assert gw.duplicates == len(again)
    assert gw.lost == 0


@given(st.sets(st.integers(1, 98), min_size=1, max_size=30), st.randoms())
def test_numbers_never_seen_are_missing_then_lost_once_settled(dropped: set[int], rnd):
    rest = [s for s in range(1, 100) if s not in dropped]
    rnd.shuffle(rest)
    tracker = SeqTracker(settle=1000)
    feed(tracker, [0, *rest])
    assert tracker.missing("s", "a") == len(dropped)
    feed(tracker, list(range(100, 1200)))  # the gateway goes on: the gaps settle as lost
    gw = tracker.gateways[("s", "a")]
    assert gw.lost == len(dropped)
    assert tracker.missing("s", "a") == 0


def test_a_late_copy_within_the_window_closes_the_gap():
    tracker = SeqTracker(settle=5)
    feed(tracker, [0, 1, 4])
    assert tracker.missing("s", "a") == 2
    feed(tracker, [2, 3, 5])
    assert tracker.missing("s", "a") == 0
    assert tracker.gateways[("s", "a")].lost == 0


def test_a_gateway_starting_over_is_a_reset_not_thousands_of_duplicates():
    tracker = SeqTracker(settle=10)
    feed(tracker, list(range(50)))
    feed(tracker, [0, 1, 2])  # outbox lost: a new SD card
    gw = tracker.gateways[("s", "a")]
    assert gw.resets == 1
    assert gw.duplicates == 0
    assert gw.highest == 2


def test_a_hole_is_lost_once_the_gateway_is_far_past_it():
    tracker = SeqTracker(settle=10, max_jump=2_000_000)
    feed(tracker, [0, 1_000_001])
    assert tracker.missing("s", "a") == 1_000_000
    feed(tracker, list(range(1_000_002, 1_000_013)))
    gw = tracker.gateways[("s", "a")]
    assert (gw.lost, gw.missing) == (1_000_000, 0)


@given(st.sets(st.integers(0, 5000), min_size=1, max_size=400), st.randoms())
def test_memory_stays_bounded_and_every_number_is_seen_missing_or_lost(seen: set[int], rnd):
    order = sorted(seen)
    rnd.shuffle(order)
    tracker = SeqTracker(settle=100_000, max_ranges=20)
    feed(tracker, [min(seen), *order])  # the lowest first: nothing below it is ours to count
    gw = tracker.gateways[("s", "a")]
    unseen = max(seen) - min(seen) + 1 - len(seen)
    assert len(gw.ranges) <= 20
    assert gw.missing <= unseen
    # a number given up as lost may still come: then it counts as a duplicate, not as found
    assert gw.lost + gw.missing == unseen + gw.duplicates - 1


def test_seeing_the_brokers_retained_copy_again_is_no_duplicate():
    tracker = SeqTracker()
    feed(tracker, [0, 1, 2])
    tracker.observe("s", "a", 2, replay=True)
    assert tracker.gateways[("s", "a")].duplicates == 0


def test_an_absurd_jump_restarts_the_ranges_instead_of_a_quintillion_missing():
    tracker = SeqTracker(settle=10, max_jump=1000)
    feed(tracker, [0, 1, 2, 2**62, 2**62 + 1])
    gw = tracker.gateways[("s", "a")]
    assert (gw.missing, gw.jumps, tracker.jumps) == (0, 1, 1)
    feed(tracker, [5])  # and back: the counter was corrupt, or an old copy
    assert tracker.missing("s", "a") == 0
    assert tracker.gateways[("s", "a")].jumps == 2
    feed(tracker, [6, 8])  # an ordinary hole still counts
    assert tracker.missing("s", "a") == 1


def test_idle_gateways_are_forgotten_and_the_number_tracked_is_capped():
    now = [0.0]
    tracker = SeqTracker(max_gateways=3, idle_s=100, clock=lambda: now[0])
    for room in ("a", "b", "c"):
        tracker.observe("s", room, 0)
    assert tracker.observe("s", "d", 0).untracked
    assert tracker.untracked == 1
    assert ("s", "d") not in tracker.gateways
    now[0] = 60.0
    tracker.observe("s", "a", 1)  # a stays busy
    now[0] = 130.0
    assert not tracker.observe("s", "d", 0).untracked, "b and c went idle and were forgotten"
    assert set(tracker.gateways) == {("s", "a"), ("s", "d")}
    assert tracker.expired == 2
    assert tracker.gateways[("s", "a")].ranges == [[0, 1]]


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 2**63 - 1)), max_size=300))
def test_state_stays_bounded_for_any_sender(messages: list[tuple[int, int]]):
    tracker = SeqTracker(max_gateways=10, max_ranges=5, max_jump=10_000)
    for room, seq in messages:
        tracker.observe("s", str(room), seq)
    assert len(tracker.gateways) <= 10
    for gw in tracker.gateways.values():
        assert len(gw.ranges) <= 5
        assert 0 <= gw.missing <= 5 * 10_000
