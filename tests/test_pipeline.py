"The pipeline commands (semples cam|match|prompts|refine|pseudo|score|segment) on a tiny ToyWorld VOC export and on data/voc_mini."
import json, os
from pathlib import Path
import numpy as np
import pytest
from semples.cli import main
from semples.core import load_json, load_mask, project_root, save_json
from semples.config import check_config, load_config, preset_config
from semples.pipeline import STAGES

TRAIN = ('cam', 'match', 'prompts', 'refine', 'pseudo')   # the stages with a run folder of their own

ROOT = project_root()
FILES = ('config.json', 'metrics.jsonl', 'env.json', 'summary.json')

def _tiny(cfg, clip_dir):
    "Shrink every stage to 2 steps on the CPU with the tiny random CLIP."
    cfg['clip'].update(name=f'local-dir:{clip_dir}', pretrained=None, norm='clip')
    for k in ('cam', 'match', 'prompts', 'refine'): cfg[k].update(steps=2, batch_size=4, device='cpu', ckpt_every=0, log_every=1)
    cfg['prompts'].update(n_ctx=4, allow_missing=True, readout_k=3)
    cfg['pseudo'].update(device='cpu', threshold='tune', thresholds=[0.3, 0.5, 0.7], crf=False)
    return cfg

@pytest.fixture(scope='module')
def tmp(tmp_path_factory):
    from semples.clip import random_clip_dir
    d = tmp_path_factory.mktemp('pipeline')
    random_clip_dir(d/'clip', seed=0)
    return d

@pytest.fixture(scope='module')
def toy(tmp):
    "A finished 5-stage run on a 16-image ToyWorld export (written by the first command): (config path, run folder)."
    cfg = _tiny(preset_config('toyworld'), tmp/'clip')
    cfg['data'].update(kind='voc', root=str(tmp/'toydata'), train_split='train', val_split='val', world=None,
                       toyworld_export=dict(n_per_split=dict(train=16, tune=8, val=8), size=64, seed=0))
    cfg['segment'].update(steps=2, batch_size=4, ckpt_every=0, log_every=1, device='cpu')
    save_json(cfg, tmp/'toy.json')
    for s in STAGES: assert main([s, '--config', str(tmp/'toy.json'), '--out', str(tmp/'toyrun'), '--quiet']) == 0, s
    return tmp/'toy.json', tmp/'toyrun'

def _run(capsys, *args):
    capsys.readouterr()
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err

def test_toy_chain_files_json_and_masks(toy):
    cfg_path, out = toy
    cfg = load_config(cfg_path)
    for s in TRAIN:
        for f in FILES: assert (out/s/f).is_file(), (s, f)
        assert load_json(out/s/'config.json')['pipeline']['stage'] == s
        recs = [json.loads(l) for l in (out/s/'metrics.jsonl').read_text().splitlines()]
        assert recs and all('time' in r for r in recs)
    assert load_json(out/'match'/'config.json')['pipeline']['match']['lambda_bg'] == cfg['match']['lambda_bg']
    assert load_json(out/'refine'/'config.json')['pipeline']['inputs'].keys() == {'cam', 'prompts'}
    words = load_json(out/'prompts'/'prompt_words.json')
    assert len(words['nearest']) == 6 and all(len(v) == 3 for v in words['nearest'].values())
    masks = sorted((out/'pseudo'/'masks').glob('*.png'))
    ids = (Path(cfg['data']['root'])/'VOC2012'/'ImageSets'/'Segmentation'/'train.txt').read_text().split()
    assert [m.stem for m in masks] == sorted(ids)
    for m in masks: assert set(np.unique(load_mask(m)).tolist()) <= set(range(7)) | {255}
    s = load_json(out/'pseudo'/'summary.json')
    assert s['threshold'] in (0.3, 0.5, 0.7) and s['threshold_selected_on'] == 'tune' and 0 <= s['miou'] <= 1
    assert 'note' not in s   # tune and train are disjoint: no optimism flag

def test_rerun_is_a_noop(toy, capsys):
    cfg_path, out = toy
    before = {(s, f): (out/s/f).read_bytes() for s in TRAIN for f in ('metrics.jsonl', 'summary.json')}
    ck = {s: (out/s/'checkpoint.pt').stat().st_mtime_ns for s in TRAIN if s != 'pseudo'}
    png = (out/'pseudo'/'masks').iterdir().__next__(); t = png.stat().st_mtime_ns
    for s in TRAIN: assert _run(capsys, s, '--config', cfg_path, '--out', out, '--quiet')[0] == 0
    assert {(s, f): (out/s/f).read_bytes() for s in TRAIN for f in ('metrics.jsonl', 'summary.json')} == before
    assert {s: (out/s/'checkpoint.pt').stat().st_mtime_ns for s in ck} == ck and png.stat().st_mtime_ns == t

def test_changed_config_is_refused(toy, tmp, capsys):
    cfg_path, out = toy
    cfg = load_json(cfg_path); cfg['cam']['lr'] = 0.5; save_json(cfg, tmp/'changed.json')
    rc, err = _run(capsys, 'cam', '--config', tmp/'changed.json', '--out', out, '--quiet')
    assert rc == 1 and 'another config' in err and 'cam.lr' in err
    rc, err = _run(capsys, 'match', '--config', tmp/'changed.json', '--out', out, '--quiet')   # match checks its input stage too
    assert rc == 1 and 'cam.lr' in err

def test_change_two_stages_upstream_is_refused(toy, tmp, capsys):
    "refine reads prompts, which read match: a match section changed after the run is refused by refine and pseudo too."
    cfg_path, out = toy
    cfg = load_json(cfg_path); cfg['match']['lambda_bg'] = 0.123; save_json(cfg, tmp/'changed_match.json')
    for stage in ('refine', 'pseudo'):
        rc, err = _run(capsys, stage, '--config', tmp/'changed_match.json', '--out', out, '--quiet')
        assert rc == 1 and 'match.lambda_bg' in err and str(out/'match') in err, (stage, err)

def test_missing_stage_says_which_command(toy, tmp, capsys):
    cfg_path, _ = toy
    rc, err = _run(capsys, 'match', '--config', cfg_path, '--out', tmp/'fresh', '--quiet')
    assert rc == 1 and f'semples cam --config {cfg_path} --out {tmp/"fresh"}' in err
    rc, err = _run(capsys, 'pseudo', '--config', cfg_path, '--out', tmp/'fresh', '--quiet', '--stage', 'match')
    assert rc == 1 and 'semples match --config' in err
    rc, err = _run(capsys, 'cam', '--out', tmp/'fresh')
    assert rc == 2 and '--config' in err

def test_segment_and_score_are_stages(toy, tmp, capsys):
    "segment trained on OUT/pseudo/masks into OUT/segment and scored the val split; score judged every trained row."
    cfg_path, out = toy
    recs = [json.loads(l) for l in (out/'segment'/'metrics.jsonl').read_text().splitlines()]
    assert any('miou' in r for r in recs) and load_json(out/'segment'/'summary.json')['pseudo'] == str(out/'pseudo'/'masks')
    s = load_json(out/'score'/'summary.json')
    assert list(s['rows']) == ['cam', 'matching', 'semples'] and (s['tune_split'], s['test_split']) == ('tune', 'val')
    rc, err = _run(capsys, 'segment', '--config', cfg_path, '--out', tmp/'nothing_here', '--quiet')
    assert rc == 1 and 'semples pseudo --config' in err

def test_voc_mini_chain(tmp, capsys):
    "The three real VOC images: 20 classes, JPEGs of different sizes, threshold tuned on the labelled split (flagged)."
    cfg = _tiny(preset_config('toyworld'), tmp/'clip')
    cfg['data'].update(kind='voc', world=None, root=str(ROOT/'data'/'voc_mini'), train_split='mini', val_split='mini', cache_dir=str(tmp/'cache'),
                       crop_size=64, crop_scale=[0.5, 1.0], toyworld_export=None)
    cfg['pseudo'].update(tune_split='mini', scales=[1.0], flip=False)
    save_json(cfg, tmp/'mini.json')
    for s in TRAIN: assert _run(capsys, s, '--config', tmp/'mini.json', '--out', tmp/'minirun', '--quiet')[0] == 0, s
    masks = sorted((tmp/'minirun'/'pseudo'/'masks').glob('*.png'))
    assert [m.stem for m in masks] == ['2011_000003', '2011_000006', '2011_000025']
    for m in masks:
        a = load_mask(m); assert set(np.unique(a).tolist()) <= set(range(21)) | {255}
    assert load_mask(masks[0]).shape == (338, 500)   # full image size, not the training crop
    s = load_json(tmp/'minirun'/'pseudo'/'summary.json')
    assert 'optimistic' in s['note'] and 0 <= s['miou'] <= 1
    assert not (ROOT/'data'/'voc_mini'/'VOC2012'/'image_labels.json').exists()   # the label cache went to cache_dir

def test_class_count_mismatch_and_missing_folder(tmp, capsys):
    cfg = _tiny(preset_config('toyworld'), tmp/'clip')
    cfg['data'].update(kind='voc', world=None, root=str(ROOT/'data'/'voc_mini'), train_split='mini', val_split='mini', cache_dir=str(tmp/'cache'), toyworld_export=None)
    cfg['cam']['n_classes'] = 6; save_json(cfg, tmp/'bad.json')
    rc, err = _run(capsys, 'cam', '--config', tmp/'bad.json', '--out', tmp/'badrun', '--quiet')
    assert rc == 1 and 'class count mismatch' in err
    cfg['cam']['n_classes'] = None; cfg['data']['root'] = str(tmp/'no_such_voc'); save_json(cfg, tmp/'nofolder.json')
    rc, err = _run(capsys, 'cam', '--config', tmp/'nofolder.json', '--out', tmp/'badrun2', '--quiet')
    assert rc == 1 and 'no_such_voc' in err and 'does not exist' in err

def test_unknown_fields_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown match field\(s\) \['lamda_bg'\].*'lambda_bg'"):
        check_config(dict(preset='voc', data=dict(root='x'), match=dict(lamda_bg=1.0)))
    with pytest.raises(ValueError, match='unknown section'): check_config(dict(pseudos={}))
    with pytest.raises(ValueError, match='unknown segment field'): check_config(dict(data=dict(root='x'), segment=dict(stepz=1)))
    with pytest.raises(ValueError, match='pseudo.threshold'): check_config(dict(data=dict(root='x'), pseudo=dict(threshold='best')))
    c = check_config(dict(preset='coco', data=dict(root='x')))   # missing fields come from the preset
    assert (c['match']['lambda_bg'], c['prompts']['lambda_p'], c['refine']['lambda_ref'], c['cam']['n_classes']) == (0.75, 0.01, 0.2, 80)

@pytest.mark.parametrize('name,weights', [('voc', (2.4, 0.02, 0.05)), ('coco', (0.75, 0.01, 0.2)), ('toyworld', None)])
def test_shipped_configs(name, weights):
    from semples.segment import SegConfig
    from dataclasses import fields
    raw = load_json(ROOT/'configs'/f'{name}.json')
    c = load_config(ROOT/'configs'/f'{name}.json')
    assert c == check_config(preset_config(name))                # the shipped file is the preset
    if weights: assert (c['match']['lambda_bg'], c['prompts']['lambda_p'], c['refine']['lambda_ref']) == weights
    for k in ('train_split', 'val_split'): assert raw['data'][k]
    assert raw['data']['root'] if name != 'toyworld' else raw['data']['world']['n_train'] == 4000
    seg = {k: tuple(v) if isinstance(v, list) else v for k, v in raw['segment'].items() if not k.startswith('_')}
    SegConfig(**seg)                                             # the segment section builds (field names and values)
    assert 'semples cam --config configs/' in raw['_about']
