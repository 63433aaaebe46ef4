"semples.pseudo: thresholds, which split chose them, pseudo-mask files, and the optional dense CRF."
import json, sys
from pathlib import Path
import numpy as np
import pytest
import torch

from semples.core import load_mask
from semples.data import VOCSegDataset, ToyWorldDataset
from semples.metrics import eval_folder
from semples.pseudo import (cams_to_mask, normalize_cams, synthetic_cams, sweep_thresholds, evaluate_cams, save_pseudo_masks,
                            crf_refine, crf_available, require_crf, CRF_INSTALL, SubsetView)

ROOT = Path(__file__).resolve().parent.parent
VOC_MINI = ROOT / 'data' / 'voc_mini'


@pytest.fixture(scope='module')
def toy():
    tr = ToyWorldDataset(n=12, start=0, split='toy-train', size=64, seed=5)
    va = ToyWorldDataset(n=12, start=500, split='toy-val', size=64, seed=5)
    cams = {i: synthetic_cams(d.read_mask(i), 6, stride=8, gamma=2.0, noise=0.15, seed=k) for d in (tr, va) for k, i in enumerate(d.ids)}
    return tr, va, cams


def literal_pseudo_mask(cams, labels, t):
    "argmax over [t, min-max normalised CAMs of present classes], written out with numpy."
    c = np.asarray(cams, np.float64).copy()
    for k in range(len(c)):
        if labels[k] > 0:
            lo, hi = c[k].min(), c[k].max(); c[k] = (c[k] - lo) / max(hi - lo, 1e-5)
        else: c[k] = 0
    return np.concatenate([np.full((1, *c.shape[1:]), t), c]).argmax(0)


def test_cams_to_mask_matches_literal_definition():
    rng = np.random.default_rng(0)
    cams, labels = rng.random((5, 7, 9)) * 3, np.array([1, 0, 1, 1, 0])
    for t in (0.0, 0.2, 0.5, 0.9, 1.0):
        assert np.array_equal(cams_to_mask(cams, labels, t).numpy(), literal_pseudo_mask(cams, labels, t))
    assert set(np.unique(cams_to_mask(cams, labels, 0.0).numpy())) <= {0, 1, 3, 4}   # absent classes never win
    assert cams_to_mask(cams, labels, 1.0).max() == 0                                  # nothing beats t = 1


def test_normalize_cams_flat_and_mismatch():
    x = normalize_cams(torch.ones(2, 3, 3), torch.tensor([1, 1]))
    assert torch.all(x == 0)
    with pytest.raises(ValueError, match='class count mismatch'):
        normalize_cams(torch.ones(2, 3, 3), torch.ones(3))
    with pytest.raises(ValueError, match='CAMs must be'):
        normalize_cams(torch.ones(3, 3))


def test_sweep_equals_per_threshold_evaluation(toy):
    tr, _, cams = toy
    sw = sweep_thresholds(cams, tr, thresholds=(0.6, 0.2, 0.4), progress=False)
    assert sw['thresholds'] == [0.2, 0.4, 0.6] and sw['split'] == 'toy-train'
    for t, mi in zip(sw['thresholds'], sw['miou']):
        assert evaluate_cams(cams, tr, threshold=t, progress=False)['miou'] == pytest.approx(mi, abs=1e-12)
    assert sw['best_miou'] == max(sw['miou'])


def test_threshold_provenance_is_recorded(toy):
    tr, va, cams = toy
    conv = evaluate_cams(cams, tr, progress=False)
    assert conv['threshold_selected_on'] == 'toy-train' and conv['threshold_tuned_on_eval_split'] is True
    assert 'optimistic' in conv['note'] and conv['curve']['split'] == 'toy-train'
    honest = evaluate_cams(cams, tr, select_on=va, progress=False)
    assert honest['threshold_selected_on'] == 'toy-val' and honest['threshold_tuned_on_eval_split'] is False
    assert 'note' not in honest and honest['threshold'] == honest['curve']['best_threshold']
    assert conv['miou'] >= honest['miou'] - 1e-12
    given = evaluate_cams(cams, tr, threshold=0.35, progress=False)
    assert given['threshold_selected_on'] == 'given' and given['curve'] is None and given['threshold'] == 0.35
    json.dumps({k: v for k, v in conv.items()})                   # the whole result is JSON-serialisable


def test_callable_cams_and_missing_ids(toy):
    tr, _, cams = toy
    r1 = evaluate_cams(cams, tr, threshold=0.3, progress=False)
    r2 = evaluate_cams(lambda item: cams[item['id']], tr, threshold=0.3, progress=False)
    assert r1['miou'] == r2['miou'] and r1['per_image'] == r2['per_image']
    with pytest.raises(KeyError, match='no CAMs for id'):
        evaluate_cams({}, tr, threshold=0.3, progress=False)
    with pytest.raises(ValueError, match='one map per foreground class'):
        evaluate_cams({i: torch.zeros(3, 4, 4) for i in tr.ids}, tr, threshold=0.3, progress=False)


def test_perfect_cams_give_perfect_masks():
    ds = ToyWorldDataset(n=4, size=64, seed=2)
    cams = {i: synthetic_cams(ds.read_mask(i), 6, stride=1, gamma=1.0) for i in ds.ids}   # exact one-hot maps
    r = evaluate_cams(cams, ds, threshold=0.5, progress=False)
    assert r['miou'] == 1.0 and all(v == 1.0 for v in r['per_image'].values())


def test_save_pseudo_masks_resume_and_eval(tmp_path):
    ds = VOCSegDataset(VOC_MINI, 'mini', cache_dir=False)
    cams = {i: synthetic_cams(ds.read_mask(i), 20, stride=16) for i in ds.ids}
    out = save_pseudo_masks(cams, ds, tmp_path / 'pm', 0.3, meta={'threshold_selected_on': 'given'}, progress=False)
    cfg = json.loads((out / 'pseudo_config.json').read_text())
    assert cfg['threshold'] == 0.3 and cfg['threshold_selected_on'] == 'given' and cfg['crf'] is False
    assert eval_folder(out, ds, progress=False)['miou'] == pytest.approx(evaluate_cams(cams, ds, threshold=0.3, progress=False)['miou'])
    # resume: an existing file is kept as is; a missing one is written
    keep = out / f'{ds.ids[0]}.png'; keep.write_bytes(keep.read_bytes()); (out / f'{ds.ids[1]}.png').unlink()
    mtime = keep.stat().st_mtime_ns
    save_pseudo_masks(cams, ds, out, 0.3, progress=False)
    assert keep.stat().st_mtime_ns == mtime and (out / f'{ds.ids[1]}.png').is_file()
    with pytest.raises(ValueError, match='other settings'):
        save_pseudo_masks(cams, ds, out, 0.4, progress=False)
    save_pseudo_masks(cams, ds, out, 0.4, overwrite=True, progress=False)
    assert json.loads((out / 'pseudo_config.json').read_text())['threshold'] == 0.4


def test_crf_missing_gives_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, 'pydensecrf', None)          # make `import pydensecrf...` fail
    monkeypatch.setitem(sys.modules, 'pydensecrf.densecrf', None)
    assert crf_available() is False
    with pytest.raises(ImportError, match=r'pip install -e "\.\[crf\]"'):
        require_crf()
    with pytest.raises(ImportError, match='pydensecrf2'):
        crf_refine(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8))
    ds = ToyWorldDataset(n=1, size=64)
    with pytest.raises(ImportError, match='crf=False'):
        evaluate_cams({}, ds, threshold=0.3, crf=True, progress=False)
    assert CRF_INSTALL == 'pip install -e ".[crf]"'


@pytest.mark.skipif(not crf_available(), reason='optional crf extra (pydensecrf2) not installed')
def test_crf_refines_toward_edges():
    ds = ToyWorldDataset(n=6, size=64, seed=4)
    cams = {i: synthetic_cams(ds.read_mask(i), 6, stride=8, gamma=1.0) for i in ds.ids}
    plain = evaluate_cams(cams, ds, threshold=0.4, progress=False)
    crf = evaluate_cams(cams, ds, threshold=0.4, crf=True, progress=False)
    assert crf['crf'] is True and crf['miou'] > plain['miou']
    img, m = ds.read_image(ds.ids[0]), cams_to_mask(cams[ds.ids[0]], ds.labels_of(ds.ids[0]), 0.4, size=(64, 64)).numpy()
    ref = crf_refine(img, m)
    assert ref.shape == m.shape and ref.dtype == np.uint8 and set(np.unique(ref)) <= set(np.unique(m))
    with pytest.raises(ValueError, match='unknown CRF parameters'):
        crf_refine(img, m, sigma=3)


def test_subset_view_keeps_the_dataset_readers():
    import copy, pickle
    ds = ToyWorldDataset(n=6, seed=3, size=32)
    v = SubsetView(ds, ds.ids[2:4], split='two')
    assert len(v) == 2 and v.split == 'two' and v.classes == ds.classes and v.ids == ds.ids[2:4]
    assert v[0]['id'] == ds.ids[2] and torch.equal(v[1]['mask'], ds[3]['mask'])
    assert np.array_equal(v.read_mask(ds.ids[2]), ds.read_mask(ds.ids[2]))     # readers of the whole dataset
    w = copy.copy(v); assert w.ids == v.ids                                       # no endless __getattr__ recursion
    assert SubsetView(ds, ds.ids[:1]).split == ds.split
