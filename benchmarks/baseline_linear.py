"""The linear baseline the GCNs are compared with: standardised logistic
regression on the flattened joint coordinates (every node, frame and channel
of the processed sequence), on each SBU fold and on the synthetic default.

    python benchmarks/baseline_linear.py --sbu-root datasets/sbu [--synthetic-root DIR]

Without ``--sbu-root`` (or when its raw folder is missing) only the synthetic
dataset is evaluated.
"""
import argparse
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tcmp_pyg.datasets import SBUKinectInteraction, SyntheticSkeletonActions


def flat(dataset):
    x = np.stack([d.x.numpy().reshape(-1) for d in dataset])
    y = np.array([int(d.y) for d in dataset])
    return x, y


def accuracy(train, test) -> float:
    (xa, ya), (xb, yb) = flat(train), flat(test)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    return float(model.fit(xa, ya).score(xb, yb))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--sbu-root', default=None)
    parser.add_argument('--synthetic-root', default=None)
    args = parser.parse_args()
    results = {}
    if args.sbu_root and (Path(args.sbu_root) / 'raw').is_dir():
        accs = []
        for fold in range(1, 6):
            acc = accuracy(SBUKinectInteraction(args.sbu_root, fold=fold, split='train'),
                           SBUKinectInteraction(args.sbu_root, fold=fold, split='test'))
            print(f'SBU fold {fold}: logistic regression {acc:.3f}')
            results[f'sbu_fold{fold}'] = acc
            accs.append(acc)
        results['sbu_mean'] = float(np.mean(accs))
        print(f'SBU mean over folds: {results["sbu_mean"]:.3f}')
    with tempfile.TemporaryDirectory() as tmp:
        root = args.synthetic_root or tmp
        acc = accuracy(SyntheticSkeletonActions(root, split='train'),
                       SyntheticSkeletonActions(root, split='test'))
    print(f'synthetic (default): logistic regression {acc:.3f}')
    results['synthetic'] = acc
    print('RESULT ' + ' '.join(f'{k}={v:.3f}' for k, v in results.items()))


if __name__ == '__main__':
    main()
