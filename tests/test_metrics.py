"semples.metrics against hand-written references, and `semples eval` on the real VOC images of data/voc_mini."
import json, shutil, subprocess
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
from torchmetrics.classification import MulticlassJaccardIndex

from semples.core import load_mask, save_mask
from semples.data import VOCSegDataset
from semples.metrics import SegmentationMetric, iou_from_confusion, miou_conventions, image_miou, eval_folder, eval_cli, iou_table

ROOT = Path(__file__).resolve().parent.parent
VOC_MINI = ROOT / 'data' / 'voc_mini'


def reference_confusion(pred, gt, C):
    "The confusion matrix by explicit loops over pixels: the oracle."
    cm = np.zeros((C, C), np.int64)
    for g, p in zip(np.asarray(gt).ravel().tolist(), np.asarray(pred).ravel().tolist()):
        if g != 255: cm[g, p] += 1
    return cm


def reference_miou(cm):
    "np.nanmean over TP / (TP + FP + FN), written out class by class."
    ious = []
    for c in range(len(cm)):
        tp, fp, fn = cm[c, c], cm[:, c].sum() - cm[c, c], cm[c, :].sum() - cm[c, c]
        ious.append(tp / (tp + fp + fn) if tp + fp + fn else np.nan)
    return np.array(ious), float(np.nanmean(ious))


def test_hand_written_example():
    gt = np.array([[0, 0, 0, 1], [0, 1, 1, 255]]); pred = np.array([[0, 0, 2, 1], [0, 1, 0, 2]])
    m = SegmentationMetric(4); m.update(pred, gt)
    assert np.array_equal(m.confusion[:, :4], [[3, 0, 1, 0], [1, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    r = m.compute()
    assert [r['per_class'][k] for k in '012'] == pytest.approx([0.6, 2 / 3, 0.0]) and r['per_class']['3'] is None
    assert r['miou'] == pytest.approx((0.6 + 2 / 3 + 0) / 3)
    assert r['miou_gt_present'] == pytest.approx((0.6 + 2 / 3) / 2)
    assert miou_conventions(m.confusion)['all'] == pytest.approx((0.6 + 2 / 3) / 4)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_split_level_matrix_matches_oracle_and_torchmetrics(seed):
    rng = np.random.default_rng(seed); C = 6
    m = SegmentationMetric(C)
    jac = MulticlassJaccardIndex(num_classes=C, ignore_index=255, average='macro')
    total = np.zeros((C, C), np.int64)
    for _ in range(4):                                  # four "images" of different sizes
        h, w = rng.integers(3, 9, 2)
        gt = rng.choice([0, 1, 2, 4, 255], size=(h, w))  # classes 3 and 5 never in the ground truth
        pred = rng.choice([0, 1, 2, 3], size=(h, w))     # class 3 predicted although absent; class 5 nowhere
        m.update(torch.from_numpy(pred), torch.from_numpy(gt)); jac.update(torch.from_numpy(pred), torch.from_numpy(gt))
        total += reference_confusion(pred, gt, C)
    assert np.array_equal(m.confusion[:, :C], total) and m.confusion[:, C].sum() == 0
    ious, miou = reference_miou(total)
    np.testing.assert_allclose(m.compute()['iou'], ious, equal_nan=True)
    assert m.compute()['miou'] == pytest.approx(miou)
    assert float(jac.compute()) == pytest.approx(miou, abs=1e-6), 'torchmetrics macro = np.nanmean convention'
    assert np.isnan(ious[5]) and ious[3] == 0


def test_split_level_is_not_mean_of_images():
    m = SegmentationMetric(2)
    a_gt, a_pr = np.ones((10, 10), int), np.ones((10, 10), int)           # big image, perfect
    b_gt, b_pr = np.array([[1, 0]]), np.array([[0, 1]])                   # tiny image, all wrong
    m.update(a_pr, a_gt); m.update(b_pr, b_gt)
    ref = reference_miou(reference_confusion(np.r_[a_pr.ravel(), b_pr.ravel()], np.r_[a_gt.ravel(), b_gt.ravel()], 2))[1]
    assert m.compute()['miou'] == pytest.approx(ref)
    assert ref != pytest.approx(np.mean([image_miou(a_pr, a_gt, 2), image_miou(b_pr, b_gt, 2)]))


def test_no_prediction_255_is_a_miss_not_a_false_positive():
    m = SegmentationMetric(3)
    m.update(np.array([[255, 1, 1]]), np.array([[1, 1, 2]]))
    r = m.compute()
    assert r['per_class']['1'] == pytest.approx(1 / 3)   # TP 1, FN 1 (the 255), FP 1 (the class-2 pixel)
    assert r['per_class']['0'] is None                    # nobody gained a false positive from the 255
    assert r['per_class']['2'] == 0.0


def test_bad_values_and_shapes():
    m = SegmentationMetric(3)
    with pytest.raises(ValueError, match='class count mismatch'): m.update(np.array([[0, 3]]), np.array([[0, 0]]))
    with pytest.raises(ValueError, match='class count mismatch'): m.update(np.array([[0, 0]]), np.array([[0, 7]]))
    with pytest.raises(ValueError, match='differs from ground truth'): m.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError): SegmentationMetric(1)
    with pytest.raises(ValueError, match='class count mismatch'): SegmentationMetric(3, ['a', 'b'])
    assert iou_from_confusion(np.zeros((2, 2))).tolist() != [0, 0]


def test_iou_table():
    t = iou_table({'background': 0.9, 'cat': None}, 0.9)
    assert '| cat | n/a |' in t and '| background | 90.0 |' in t


# ---------------------------------------------------------------- semples eval on voc_mini
@pytest.fixture(scope='module')
def pred_dirs(tmp_path_factory):
    d = tmp_path_factory.mktemp('preds')
    ds = VOCSegDataset(VOC_MINI, 'mini', cache_dir=False)
    (d / 'gt').mkdir(); (d / 'bg').mkdir()
    for i in ds.ids:
        shutil.copy(ds.mask_path(i), d / 'gt' / f'{i}.png')
        save_mask(np.zeros_like(ds.read_mask(i)), d / 'bg' / f'{i}.png')
    return d, ds


def run_eval(*args):
    return subprocess.run([shutil.which('semples'), 'eval', *map(str, args)], capture_output=True, text=True, timeout=120)


def test_eval_ground_truth_against_itself_is_1(pred_dirs):
    d, _ = pred_dirs
    r = run_eval('--pred', d / 'gt', '--voc', VOC_MINI, '--split', 'mini')
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)                                  # exactly one JSON object
    assert out['miou'] == 1.0
    present = {k for k, v in out['per_class'].items() if v is not None}
    assert present == {'background', 'bottle', 'bus', 'car', 'chair', 'person', 'sofa'}
    assert all(out['per_class'][k] == 1.0 for k in present) and len(out['per_class']) == 21


def test_eval_all_background_hand_computed(pred_dirs, capsys):
    d, ds = pred_dirs
    gts = [load_mask(VOC_MINI / 'VOC2012' / 'SegmentationClass' / f'{i}.png') for i in ds.ids]
    n_bg = sum(int((g == 0).sum()) for g in gts); n_valid = sum(int((g != 255).sum()) for g in gts)
    # IoU(background) = bg pixels / non-void pixels; 6 object classes in the GT get 0; 14 absent classes do not count
    expected = (n_bg / n_valid) / 7
    assert eval_cli(str(d / 'bg'), str(VOC_MINI), 'mini') == 0
    out = json.loads(capsys.readouterr().out)
    assert out['miou'] == pytest.approx(expected, abs=1e-12)
    assert out['per_class']['background'] == pytest.approx(n_bg / n_valid, abs=1e-12)
    assert out['per_class']['sofa'] == 0.0 and out['per_class']['dog'] is None
    assert out['miou_gt_present'] == pytest.approx(expected)   # no false alarms of absent classes here


def test_eval_missing_predictions_is_an_error(pred_dirs, tmp_path):
    d, ds = pred_dirs
    part = tmp_path / 'part'; shutil.copytree(d / 'gt', part); (part / f'{ds.ids[2]}.png').unlink()
    r = run_eval('--pred', part, '--voc', VOC_MINI, '--split', 'mini')
    assert r.returncode != 0 and r.stdout == ''
    assert '1 of 3 ids' in r.stderr and ds.ids[2] in r.stderr


def test_eval_bad_predictions(pred_dirs, tmp_path, capsys):
    d, ds = pred_dirs
    bad = tmp_path / 'bad'; shutil.copytree(d / 'gt', bad)
    p = bad / f'{ds.ids[0]}.png'; Image.open(p).convert('RGB').save(p)
    assert eval_cli(str(bad), str(VOC_MINI), 'mini') == 1
    assert 'not a class-index mask' in capsys.readouterr().err
    save_mask(np.zeros((5, 5), np.uint8), p)
    with pytest.raises(ValueError, match=f'image {ds.ids[0]}: prediction shape'):
        eval_folder(bad, ds, progress=False)
    assert eval_cli(None, str(VOC_MINI), 'mini') == 2
    assert eval_cli(str(d / 'gt'), str(VOC_MINI), 'nosuchsplit') == 1
    assert "no list for split 'nosuchsplit'" in capsys.readouterr().err
