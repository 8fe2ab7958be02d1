"""The streaming demo: boxes settled frame by frame equal the whole clip's post-processing; the threaded
pipeline keeps order, passes errors on and stops."""
import numpy as np
import pytest

from utils.video.tracking import SettledTracks, settle_boxes, xyxy_to_square


def random_sightings(rng, num_frames, max_gap):
    """{pid: (frames, xyxy boxes)} for a few people appearing, vanishing for short gaps and leaving."""
    people = {}
    for pid in range(1, 6):
        start = int(rng.integers(0, num_frames - 5))
        frames, f = [], start
        while f < num_frames and len(frames) < rng.integers(1, 60):
            frames.append(f)
            f += 1 + (int(rng.integers(1, max_gap + 1)) if rng.random() < 0.15 else 0)
        corner = rng.uniform(0, 500, size=2)
        size = rng.uniform(50, 200, size=2)
        drift = np.cumsum(rng.normal(0, 3, size=(len(frames), 2)), axis=0)
        boxes = np.concatenate([corner + drift, corner + drift + size], axis=1)
        people[pid] = (np.array(frames), boxes)
    return people


@pytest.mark.parametrize('seed,sigma,min_len', [(0, 2.0, 1), (1, 2.0, 5), (2, 0.0, 1), (3, 1.0, 3)])
def test_settled_tracks_equal_the_whole_clips_post_processing(seed, sigma, min_len):
    rng = np.random.default_rng(seed)
    num_frames, max_gap, horizon = 120, 6, 7
    people = random_sightings(rng, num_frames, max_gap)
    stream = SettledTracks(max_gap, sigma, horizon, min_len, to_square=xyxy_to_square)
    got: dict[int, dict[int, np.ndarray]] = {}
    for frame in range(num_frames):
        stream.observe(frame, [(pid, boxes[list(frames).index(frame)]) for pid, (frames, boxes) in people.items()
                               if frame in frames])
        taken = stream.take()
        assert not set(taken) & set(got), 'a frame was given out twice'
        got.update(taken)
        assert all(f <= frame for f in taken)
    got.update(stream.take(everything=True))
    expected: dict[int, dict[int, np.ndarray]] = {}
    for pid, (frames, boxes) in people.items():
        if len(frames) < min_len:
            continue
        for f, box in zip(*settle_boxes(frames, boxes, max_gap, sigma, xyxy_to_square)):
            expected.setdefault(int(f), {})[pid] = box
    assert sorted(got) == sorted(expected)
    for f in expected:
        assert sorted(got[f]) == sorted(expected[f])
        for pid in expected[f]:
            np.testing.assert_array_equal(got[f][pid], expected[f][pid])


def test_settled_tracks_wait_only_as_long_as_needed():
    stream = SettledTracks(max_gap=15, smooth_sigma=2.0, horizon=15)
    for frame in range(40):
        stream.observe(frame, [(1, [100.0, 100.0, 50.0, 50.0])])
    assert stream.final_until() == 39 - 8          # the Gaussian reads 8 frames ahead
    for frame in range(40, 60):
        stream.observe(frame, [])
    assert stream.final_until() == 59              # the person left for good: everything is final


def test_track_smoother_frame_by_frame_equals_whole_track_filtering():
    from utils.video.smoothing import one_euro, smooth_pose_aa, smooth_track

    rng = np.random.default_rng(4)
    pose = np.cumsum(rng.normal(0, 0.2, (40, 72)), axis=0).astype(np.float32)   # crosses angle pi often
    betas, cam = rng.normal(size=(40, 10)), rng.normal(size=(40, 3))
    got = smooth_track(pose, betas, cam, fps=25, min_cutoff=1.0, beta=0.3)
    np.testing.assert_allclose(got[0], smooth_pose_aa(pose, 25, 1.0, 0.3), atol=1e-6)
    np.testing.assert_allclose(got[1], one_euro(betas, 25, 1.0, 0.3).astype(np.float32), atol=1e-6)
    np.testing.assert_allclose(got[2], one_euro(cam, 25, 1.0, 0.3).astype(np.float32), atol=1e-6)


class Delay:
    """A stage that holds items back in groups and sleeps a little (to shuffle thread timing)."""

    def __init__(self, name, group, fail_at=None):
        self.name, self.group, self.fail_at, self.held = name, group, fail_at, []

    def process(self, item):
        import time

        if item == self.fail_at:
            raise ValueError(f'{self.name} failed at {item}')
        time.sleep(0.001 * (item % 3))
        self.held.append(item * 10 if self.name == 'times ten' else item)
        if len(self.held) >= self.group:
            out, self.held = self.held, []
            return out
        return []

    def finish(self):
        out, self.held = self.held, []
        return out


def pipeline_threads():
    """The pipeline's threads still alive (named 'pipeline-<stage>'; other tests' threads may come and go)."""
    import threading

    return [t.name for t in threading.enumerate() if t.name.startswith('pipeline-')]


def test_pipeline_keeps_order_and_times_each_stage():
    from core.inference.pipeline import StageClock, run_pipeline

    clock = StageClock()
    out = list(run_pipeline(range(50), [Delay('times ten', 3), Delay('batch', 7)], queue_size=2, clock=clock))
    assert out == [10 * i for i in range(50)]
    assert clock.items == {'decoding': 50, 'times ten': 50, 'batch': 50}
    assert all(sec >= 0 for sec in clock.seconds.values())


def test_pipeline_raises_a_stages_error_in_the_caller_and_stops_every_thread():
    from core.inference.pipeline import run_pipeline

    got = []
    with pytest.raises(ValueError, match='batch failed at 20'):
        for item in run_pipeline(range(10_000), [Delay('times ten', 1), Delay('batch', 1, fail_at=200)]):
            got.append(item)
    assert got == [10 * i for i in range(len(got))] and len(got) < 200
    assert not pipeline_threads()

    def broken_source():
        yield 1
        raise OSError('cannot read frame 1')

    with pytest.raises(OSError, match='frame 1'):
        list(run_pipeline(broken_source(), [Delay('batch', 1)]))
    assert not pipeline_threads()


def test_pipeline_stops_when_the_caller_stops_reading():
    from core.inference.pipeline import run_pipeline

    items = run_pipeline(iter(range(10**9)), [Delay('batch', 1)], queue_size=2)
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()
    assert not pipeline_threads()
