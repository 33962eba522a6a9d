"""The data pipeline at NTU scale: generates an NTU RGB+D 60-sized raw corpus
in the real .skeleton format, processes it with the on-disk NTURGBD (parallel
parsing, memory-mapped storage), then compares the data-loader throughput with
the training step throughput of the compact ST-GCN.

    python benchmarks/bench_data.py [--files 56880] [--frames 300] [--workers 2]
    python benchmarks/bench_data.py --files 2000 --frames 120      # quick run

Corpus: file names SsssCcccPpppRrrrAaaa.skeleton drawn without repetition from
the real ranges (setups 1-17, cameras 1-3, performers 1-40, replications 1-2,
actions 1-60); min(frames, 70 + Exp(40)) frames each (mean about 110, up to
300, as the real clips); one body, two for the mutual actions 50-60, and a
short spurious second body in 10 % of the others, as the Kinect produces;
5 % of the files start with frames without any body. Every body is the full
10-value line, the joint count and 25 joint lines of 12 values (x y z depthX
depthY colorX colorY orientationWXYZ trackingState), CRLF line ends, synthetic
smooth motion.

Goals (the 'Reliability and scale' issue): 56,880 files processed in under 10
minutes on 2 cores with a peak RSS (the whole process tree) under 4 GB; the
loader (2 workers) faster than the training step.

Peak RSS is the largest sum of the resident sets of this process and all its
descendants, sampled every 0.1 s from /proc (shared copy-on-write pages count
once per process, so it is an upper bound); where /proc is missing, the
`resource` maxima of this process plus its largest child.

Ends with one line:
RESULT files=... files_per_s=... process_s=... peak_rss_mb=...
       loader_samples_per_s=... train_samples_per_s=...
"""
import argparse
import os
import os.path as osp
import resource
import shutil
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from tcmp_pyg.datasets import NTURGBD
from tcmp_pyg.datasets.on_disk import default_num_workers
from tcmp_pyg.nn import build_model

# Field ranges of NTU RGB+D 60 file names.
SETUPS, CAMERAS, PERFORMERS, REPLICATIONS, ACTIONS = 17, 3, 40, 2, 60
MUTUAL_ACTIONS = range(50, 61)
MIN_FRAMES, MEAN_EXTRA_FRAMES = 70, 40
BODY_ID = 72057594037927936  # Kinect tracking ids are of this size


# ---- corpus -----------------------------------------------------------------

def sample_names(num_files: int, seed: int) -> List[str]:
    """``num_files`` distinct names from the NTU-60 ranges, sorted."""
    total = SETUPS * CAMERAS * PERFORMERS * REPLICATIONS * ACTIONS
    if num_files > total:
        raise ValueError(f"At most {total} distinct NTU-60 names (got {num_files})")
    codes = np.random.default_rng(seed).choice(total, num_files, replace=False)
    names = []
    for code in codes.tolist():
        code, a = divmod(code, ACTIONS)
        code, r = divmod(code, REPLICATIONS)
        code, p = divmod(code, PERFORMERS)
        s, c = divmod(code, CAMERAS)
        names.append(f'S{s + 1:03d}C{c + 1:03d}P{p + 1:03d}R{r + 1:03d}A{a + 1:03d}')
    return sorted(names)


def skeleton_text(rng: np.random.Generator, action: int, max_frames: int) -> str:
    """One synthetic .skeleton file (CRLF line ends, as the release)."""
    lo = min(MIN_FRAMES, max_frames)
    T = min(max_frames, lo + int(rng.exponential(MEAN_EXTRA_FRAMES)))
    num_bodies = 2 if action in MUTUAL_ACTIONS else 1
    present = np.zeros((T, 2), dtype=bool)
    present[:, :num_bodies] = True
    if num_bodies == 1 and rng.random() < 0.1:  # a short spurious body
        start = int(rng.integers(0, T))
        present[start:start + int(rng.integers(1, 30)), 1] = True
    if rng.random() < 0.05:  # leading frames without any body
        present[:int(rng.integers(1, 10))] = False
    # Motion: rest pose 3 m in front of the camera plus joint sinusoids.
    t = np.arange(T, dtype=np.float64)[:, None, None, None] / 30.0
    rest = rng.normal(0, 0.3, (1, 2, 25, 3)) + np.array([0.0, 0.0, 3.0])
    amp = rng.uniform(0.0, 0.15, (1, 2, 25, 3))
    freq = rng.uniform(0.2, 2.0, (1, 2, 25, 3))
    phase = rng.uniform(0, 2 * np.pi, (1, 2, 25, 3))
    xyz = rest + amp * np.sin(2 * np.pi * freq * t + phase)           # [T, 2, 25, 3]
    depth = 256 + 365 * xyz[..., :2] / xyz[..., 2:]                  # pixels
    color = 960 + 1060 * xyz[..., :2] / xyz[..., 2:]
    values = np.concatenate([xyz, depth, color], axis=-1)             # [T, 2, 25, 7]
    quat = rng.normal(size=(2, 25, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    blocks = []
    for b in range(2):
        tails = ' '.join(['%.7g'] * 7)
        joint_fmt = ''.join(f'{tails} {q[0]:.7g} {q[1]:.7g} {q[2]:.7g} {q[3]:.7g} 2\r\n'
                            for q in quat[b])
        head = (f'{BODY_ID + int(rng.integers(0, 10**6))} 0 1 1 1 1 0 '
                f'{rng.normal(0, 0.2):.7g} {rng.normal(0, 0.2):.7g} 2\r\n25\r\n')
        blocks.append((head, joint_fmt))
    out = [f'{T}\r\n']
    for f in range(T):
        bodies = np.flatnonzero(present[f])
        out.append(f'{len(bodies)}\r\n')
        for b in bodies:
            head, joint_fmt = blocks[b]
            out.append(head)
            out.append(joint_fmt % tuple(values[f, b].ravel().tolist()))
    return ''.join(out)


def write_files(folder: str, names: List[str], seeds: List[int],
                max_frames: int) -> int:
    """Writes one chunk of the corpus (runs in a worker); returns bytes."""
    size = 0
    for name, seed in zip(names, seeds):
        text = skeleton_text(np.random.default_rng(seed), int(name[-3:]), max_frames)
        with open(osp.join(folder, name + '.skeleton'), 'w', newline='') as f:
            f.write(text)
        size += len(text)
    return size


def generate(folder: str, num_files: int, max_frames: int, workers: int,
             seed: int = 0) -> int:
    os.makedirs(folder, exist_ok=True)
    names = sample_names(num_files, seed)
    seeds = [seed * 1_000_003 + i for i in range(num_files)]
    step = 200
    with ProcessPoolExecutor(max(workers, 1)) as pool:
        sizes = pool.map(write_files, [folder] * len(range(0, num_files, step)),
                         [names[i:i + step] for i in range(0, num_files, step)],
                         [seeds[i:i + step] for i in range(0, num_files, step)],
                         [max_frames] * len(range(0, num_files, step)))
        return sum(sizes)


# ---- memory -----------------------------------------------------------------

class TreeRSS:
    """Samples the summed RSS of this process and its descendants."""
    def __init__(self, period: float = 0.1) -> None:
        self.period, self.peak = period, 0
        self._stop = threading.Event()
        self._page = os.sysconf('SC_PAGE_SIZE')
        self.available = osp.isdir('/proc/self')

    def _tree_rss(self) -> int:
        parent = {}
        for pid in os.listdir('/proc'):
            if pid.isdigit():
                try:
                    with open(f'/proc/{pid}/stat') as f:
                        parent[int(pid)] = int(f.read().rsplit(')', 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        tree, todo = set(), [os.getpid()]
        while todo:
            pid = todo.pop()
            tree.add(pid)
            todo += [c for c, p in parent.items() if p == pid and c not in tree]
        total = 0
        for pid in tree:
            try:
                with open(f'/proc/{pid}/statm') as f:
                    total += int(f.read().split()[1]) * self._page
            except (OSError, IndexError, ValueError):
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            self._stop.wait(self.period)

    def __enter__(self) -> 'TreeRSS':
        if self.available:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.available:
            self._stop.set()
            self._thread.join()
        else:  # ru_maxrss is in KiB on Linux
            self.peak = 1024 * (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


# ---- throughput ---------------------------------------------------------------

def loader_throughput(dataset, batch_size: int, num_batches: int,
                      workers: int) -> Tuple[float, int]:
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                        num_workers=workers, drop_last=True)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    start, seen = time.perf_counter(), 0
    for _, batch in zip(range(num_batches), it):
        seen += batch.num_graphs
    return seen / (time.perf_counter() - start), seen


def train_step(model, opt, batch) -> None:
    opt.zero_grad()
    F.cross_entropy(model(batch), batch.y).backward()
    opt.step()


def train_throughput(dataset, batch_size: int, num_batches: int) -> float:
    torch.manual_seed(0)
    model = build_model('stgcn-compact', 3, 60, 'ntu')
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    batches = [b for _, b in zip(range(num_batches + 2), loader)]
    model.train()
    for batch in batches[:2]:  # warm-up
        train_step(model, opt, batch)
    start = time.perf_counter()
    for batch in batches[2:]:
        train_step(model, opt, batch)
    return batch_size * num_batches / (time.perf_counter() - start)


def combined_throughput(dataset, batch_size: int, num_batches: int,
                        workers: int) -> float:
    """Training fed by the loader, both running at once."""
    torch.manual_seed(0)
    model = build_model('stgcn-compact', 3, 60, 'ntu')
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                        num_workers=workers, drop_last=True)
    it = iter(loader)
    train_step(model, opt, next(it))
    start = time.perf_counter()
    for _, batch in zip(range(num_batches), it):
        train_step(model, opt, batch)
    return batch_size * num_batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--files', type=int, default=56880)
    parser.add_argument('--frames', type=int, default=300,
                        help='longest raw clip (frames); shorter = quicker run')
    parser.add_argument('--num-frames', type=int, default=64,
                        help='frames every sample is resampled to')
    parser.add_argument('--workers', type=int, default=default_num_workers())
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--loader-batches', type=int, default=200)
    parser.add_argument('--train-batches', type=int, default=20)
    parser.add_argument('--root', default=None,
                        help='keep the corpus here (reused if already there)')
    args = parser.parse_args()

    root = args.root or tempfile.mkdtemp(prefix='bench_data_')
    raw = osp.join(root, 'raw', 'nturgb+d_skeletons')
    try:
        print(f'load average before: {os.getloadavg()}  cpus: {os.cpu_count()}  '
              f'workers: {args.workers}')
        existing = len(os.listdir(raw)) if osp.isdir(raw) else 0
        if existing != args.files:
            shutil.rmtree(osp.join(root, 'raw'), ignore_errors=True)
            start = time.perf_counter()
            size = generate(raw, args.files, args.frames, args.workers)
            gen_s = time.perf_counter() - start
            print(f'generated {args.files} files, {size / 1e9:.2f} GB in '
                  f'{gen_s:.1f} s ({args.files / gen_s:.0f} files/s)')
        else:
            print(f'reusing the {existing} files in {raw}')
        shutil.rmtree(osp.join(root, 'processed'), ignore_errors=True)

        start = time.perf_counter()
        with TreeRSS() as rss:
            NTURGBD(root, variant='60', num_frames=args.num_frames, on_disk=True,
                    num_workers=args.workers)
        process_s = time.perf_counter() - start
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        files_per_s = args.files / process_s
        print(f'processed {args.files} files in {process_s:.1f} s '
              f'({files_per_s:.1f} files/s); peak RSS of the process tree '
              f'{rss.peak / 2**20:.0f} MB (ru_maxrss: this process {own:.0f} MB, '
              f'largest child {child:.0f} MB)')
        npy = [f for f in os.listdir(osp.join(root, 'processed')) if f.endswith('.npy')]
        x = np.load(osp.join(root, 'processed', npy[0]), mmap_mode='r')
        print(f'processed array {npy[0]}: {x.shape} float32, {x.nbytes / 1e9:.2f} GB')
        print(f'load average after processing: {os.getloadavg()}')

        train = NTURGBD(root, variant='60', num_frames=args.num_frames, on_disk=True)
        lengths = train.all_meta('length').float()
        print(f'xsub train split: {len(train)} of {len(lengths)} samples; raw '
              f'frames with a body: mean {lengths.mean():.0f}, max {lengths.max():.0f}')
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        loader_sps, seen = loader_throughput(train, args.batch_size,
                                             args.loader_batches, 2)
        print(f'loader (2 workers, batch {args.batch_size}): {loader_sps:.0f} '
              f'samples/s over {seen} samples')
        train_sps = train_throughput(train, args.batch_size, args.train_batches)
        print(f'training step (stgcn-compact, SGD, batch {args.batch_size}, '
              f'{torch.get_num_threads()} threads): {train_sps:.1f} samples/s')
        both_sps = combined_throughput(train, args.batch_size, args.train_batches, 2)
        print(f'training fed by the loader (2 workers) at once: {both_sps:.1f} '
              f'samples/s ({both_sps / train_sps:.0%} of the training step alone)')
        print(f'load average at the end: {os.getloadavg()}')
        print(f'RESULT files={args.files} files_per_s={files_per_s:.1f} '
              f'process_s={process_s:.1f} peak_rss_mb={rss.peak / 2**20:.0f} '
              f'loader_samples_per_s={loader_sps:.0f} '
              f'train_samples_per_s={train_sps:.1f}')
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
