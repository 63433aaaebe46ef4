"""Fault injection: what a hostile file, a killed process, a second writer, a full disk or a runaway learning rate
does to a run folder. Each test reproduces one failure found by hand (issue 18) with the command a user would type.
The whole file runs in about a minute on 2 cores (tiny ToyWorld, a few steps per stage)."""
import json, os, shutil, signal, subprocess, sys, time, zipfile
from pathlib import Path
import pytest
import torch
from semples.cli import main
from semples.config import preset_config
from semples.core import save_json, load_json, load_checkpoint, read_jsonl

CAM_STEPS = 40
KILL_STEPS = 150   # long enough that a kill after the first checkpoint lands mid-run

class Planted:
    "A pickle whose loading would create the file `marker`: the shape of a malicious checkpoint."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (Path.touch, (Path(self.marker),))

def plant(path:Path, marker:Path, constants:str|None=None)->Path:
    "Write a planted pickle at `path` (optionally with an extra zip entry, e.g. 'x/constants.pkl', that once fooled a TorchScript test)."
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'model': Planted(marker), 'step': 1, 'config': {}}, path)
    if constants:
        with zipfile.ZipFile(path, 'a') as z: z.writestr(f'{path.stem}/{constants}', b'')
    return path

def tiny_config(tmp:Path, name='c.json', **cam)->Path:
    "The ToyWorld preset shrunk to seconds: 16 training images, a few steps per stage."
    c = preset_config('toyworld')
    c['data']['world'].update(n_train=16, n_tune=8, n_test=8)
    c['cam'].update(dict(steps=CAM_STEPS, batch_size=8, ckpt_every=4, log_every=4), **cam)
    for k in ('match', 'prompts', 'refine'): c[k].update(steps=2, batch_size=8, ckpt_every=0)
    c['prompts']['allow_missing'] = True
    save_json(c, tmp/name)
    return tmp/name

def cli(*args, env=None, **kw)->subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'semples.cli', *map(str, args)], capture_output=True, text=True, timeout=240,
                          env={**os.environ, 'OMP_NUM_THREADS': '1', **(env or {})}, **kw)

def run_main(capsys, *args)->tuple:
    "semples.cli.main in this process: (exit code, stderr)."
    code = main([str(a) for a in args]); return code, capsys.readouterr().err

# ------------------------------------------------------------------ planted pickles
def test_planted_checkpoint_in_stage_folders_never_runs(tmp_path, capsys):
    "A planted pickle as a finished stage's checkpoint, and as a checkpoint to resume from: refused in one line, never run."
    cfg, out, marker = tiny_config(tmp_path, steps=4), tmp_path/'run', tmp_path/'pwned'
    assert run_main(capsys, 'cam', '--config', cfg, '--out', out, '--quiet')[0] == 0
    plant(out/'cam'/'checkpoint.pt', marker)                                  # a finished stage, read by the next one
    code, err = run_main(capsys, 'match', '--config', cfg, '--out', out, '--quiet')
    assert code == 1 and 'refused unread' in err and str(out/'cam'/'checkpoint.pt') in err and err.count('\n') == 1, err
    (out/'cam'/'summary.json').unlink()                                       # now an unfinished stage: a rerun resumes from it
    code, err = run_main(capsys, 'cam', '--config', cfg, '--out', out, '--quiet')
    assert code == 1 and 'refused unread' in err, err
    plant(out/'match'/'checkpoint.pt', marker)
    code, err = run_main(capsys, 'match', '--config', cfg, '--out', out, '--quiet')
    assert code == 1 and 'refused unread' in err, err
    assert not marker.exists()

def test_planted_weights_files_never_run(tmp_path):
    "clip.pretrained (with a zip entry named like TorchScript's), cam.pretrained_file, segment.weights and a segment resume."
    from semples.clip import load_clip, _is_torchscript
    from semples.cam import Backbone
    from semples.segment import SegConfig, create_segmenter, train_segmenter
    marker = tmp_path/'pwned'
    for extra in ('x/constants.pkl', 'constants.pkl', None):
        f = plant(tmp_path/f'clip_{bool(extra)}_{len(extra or "")}.pt', marker, extra)
        assert not _is_torchscript(f) or extra == 'constants.pkl'
        with pytest.raises(ValueError) as e: load_clip('ViT-S-32-alt', pretrained=str(f))
        assert str(f) in str(e.value) and not marker.exists(), str(e.value)
    with pytest.raises(ValueError, match='could not be loaded into resnet10t'): Backbone('resnet10t', pretrained_file=plant(tmp_path/'bb.pth', marker))
    seg = SegConfig(arch='timm', num_classes=7, backbone='resnet10t', head_width=16, skip_width=8, steps=2, batch_size=2, device='cpu')
    with pytest.raises(ValueError, match='refused unread'): create_segmenter(SegConfig(**{**seg.__dict__, 'weights': str(plant(tmp_path/'seg.pt', marker))}))
    plant(tmp_path/'segrun'/'checkpoint.pt', marker)
    with pytest.raises(ValueError, match='refused unread'): train_segmenter(seg, [], tmp_path/'segrun')
    assert not marker.exists()

def test_cut_safetensors_names_the_file(tmp_path):
    from semples.clip import load_clip, _toyclip_dir
    d = tmp_path/'clip'; shutil.copytree(_toyclip_dir(), d)
    w = d/'open_clip_model.safetensors'; w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r'open_clip_model.safetensors\) could not be read safely'): load_clip(f'local-dir:{d}')

# ------------------------------------------------------------------ a second writer, kill -9, a cut log
def test_second_writer_is_refused_and_a_dead_holder_blocks_nothing(tmp_path, capsys):
    "While another process holds a run folder, `semples cam` on it exits 1 naming that process; once it is killed, the rerun runs."
    cfg, out = tiny_config(tmp_path, steps=2), tmp_path/'run'
    holder = subprocess.Popen([sys.executable, '-c', "import sys, time\nfrom semples.core import run_lock\n"
                               "with run_lock(sys.argv[1], 'semples cam'):\n    print('held', flush=True); time.sleep(300)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'held'
        code, err = run_main(capsys, 'cam', '--config', cfg, '--out', out, '--quiet')
        assert code == 1 and f'process {holder.pid} (semples cam' in err and err.count('\n') == 1, err
        assert not (out/'cam').exists()                                       # the refused command wrote nothing
    finally: holder.send_signal(signal.SIGKILL); holder.wait()
    assert run_main(capsys, 'cam', '--config', cfg, '--out', out, '--quiet')[0] == 0   # the kill left no lock behind

def test_kill_9_mid_training_and_a_cut_log_resume_exactly(tmp_path, capsys):
    """`semples cam` killed with SIGKILL after its first checkpoint, its log cut mid-line (as a full disk or a kill
    mid-write leaves it): the rerun skips the cut line and ends with the weights of an uninterrupted run."""
    threads = torch.get_num_threads(); torch.set_num_threads(1)   # the killed run has one thread: so do the resume and the reference
    try: _kill_and_resume(tmp_path, capsys)
    finally: torch.set_num_threads(threads)

def _kill_and_resume(tmp_path, capsys):
    cfg, out = tiny_config(tmp_path, steps=KILL_STEPS, ckpt_every=10, log_every=10), tmp_path/'run'
    first = subprocess.Popen([sys.executable, '-m', 'semples.cli', 'cam', '--config', str(cfg), '--out', str(out), '--quiet'],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    t0 = time.time()
    while not (out/'cam'/'checkpoint.pt').exists() and first.poll() is None and time.time() - t0 < 120: time.sleep(0.02)
    first.send_signal(signal.SIGKILL); first.wait()
    assert not (out/'cam'/'summary.json').exists(), 'the run finished before it could be killed: raise KILL_STEPS'
    assert (out/'cam'/'checkpoint.pt').exists(), 'the run was killed before its first checkpoint'
    with open(out/'cam'/'metrics.jsonl', 'a') as f: f.write('{"step": 99, "lo')   # the write the kill cut short
    assert run_main(capsys, 'cam', '--config', cfg, '--out', out, '--quiet')[0] == 0
    steps = [r['step'] for r in read_jsonl(out/'cam'/'metrics.jsonl') if 'loss' in r]
    assert steps[-1] == KILL_STEPS and len(steps) == len(set(steps)), steps   # every record once
    assert run_main(capsys, 'cam', '--config', cfg, '--out', tmp_path/'ref', '--quiet')[0] == 0
    a, b = (load_checkpoint(p/'cam'/'checkpoint.pt')['model'] for p in (tmp_path/'ref', out))
    assert all(torch.equal(a[k], b[k]) for k in a)

# ------------------------------------------------------------------ a full disk
def _mount_tmpfs_script(size_kb:int, inner:str)->list:
    return ['unshare', '--user', '--map-root-user', '--mount', 'sh', '-c', f'mount -t tmpfs -o size={size_kb}k tmpfs "$FULL" && {inner}']

def test_full_disk_leaves_last_checkpoint_and_resumes(tmp_path):
    "On a tmpfs that fills up during training: one line naming the full disk, the last checkpoint intact, and a resume elsewhere."
    cfg = tiny_config(tmp_path, steps=CAM_STEPS)
    probe = cli('cam', '--config', tiny_config(tmp_path, 'p.json', steps=4, ckpt_every=4), '--out', tmp_path/'probe', '--quiet')
    assert probe.returncode == 0, probe.stderr[-1500:]
    ck = (tmp_path/'probe'/'cam'/'checkpoint.pt').stat().st_size
    full = tmp_path/'full'; full.mkdir()
    size_kb = int(1.6 * ck / 1024) + 64          # room for one checkpoint and the logs, not for the next one's temporary file
    inner = (f'{sys.executable} -m semples.cli cam --config {cfg} --out "$FULL/run" --quiet; echo "rc=$?"; '
             f'cp -r "$FULL/run" {tmp_path/"saved"}')
    try: r = subprocess.run(_mount_tmpfs_script(size_kb, inner), capture_output=True, text=True, timeout=240,
                            env={**os.environ, 'FULL': str(full), 'OMP_NUM_THREADS': '1'})
    except FileNotFoundError: pytest.skip('no unshare on this machine')
    if 'rc=' not in r.stdout: pytest.skip(f'cannot mount a tmpfs here (user namespaces off?): {r.stderr.strip()[-200:]}')
    assert 'rc=1' in r.stdout, (r.stdout, r.stderr[-1500:])
    err = [l for l in r.stderr.splitlines() if 'semples cam: error' in l]
    assert len(err) == 1 and 'the disk is full' in err[0], r.stderr[-1500:]
    saved = tmp_path/'saved'
    step = load_checkpoint(saved/'cam'/'checkpoint.pt')['step']                     # the last good checkpoint loads
    assert 0 < step < CAM_STEPS and not [p for p in (saved/'cam').iterdir() if p.name.startswith('.') or 'tmp' in p.name]
    read_jsonl(saved/'cam'/'metrics.jsonl')
    again = cli('cam', '--config', cfg, '--out', saved, '--quiet'); assert again.returncode == 0, again.stderr[-1500:]
    assert load_checkpoint(saved/'cam'/'checkpoint.pt')['step'] == CAM_STEPS

# ------------------------------------------------------------------ a runaway learning rate
@pytest.mark.parametrize('lr,steps', [(1e20, 1), (1e6, CAM_STEPS)])
def test_divergence_stops_the_stage_and_the_fix_reruns(tmp_path, capsys, lr, steps):
    "lr 1e20 for 1 step (NaN weights) and lr 1e6 (the loss climbs by 1e14): one line naming stage, step and field; no network left."
    out = tmp_path/'run'
    code, err = run_main(capsys, 'cam', '--config', tiny_config(tmp_path, 'bad.json', lr=lr, steps=steps), '--out', out, '--quiet')
    assert code == 1 and "stage 'cam' stopped at step" in err and 'lower cam.lr' in err and err.count('\n') == 1, err
    ck = out/'cam'/'checkpoint.pt'; kept = ck.exists()
    if kept: assert all(torch.isfinite(v).all() for v in load_checkpoint(ck)['model'].values()) and f"delete {out/'cam'} first" in err, err
    else: assert 'can rerun into the same --out' in err, err
    code, err = run_main(capsys, 'pseudo', '--config', tmp_path/'bad.json', '--out', out, '--stage', 'cam', '--quiet')
    assert code == 1 and ('unfinished' in err or 'no finished' in err) and not (out/'pseudo_cam'/'masks').exists(), err   # no masks from it
    if not kept:                                                                  # nothing good was kept: the fix reruns in place
        assert run_main(capsys, 'cam', '--config', tiny_config(tmp_path, steps=steps), '--out', out, '--quiet')[0] == 0

def test_pseudo_refuses_a_broken_network(tmp_path, capsys):
    "A finished stage-0 network with NaN weights (written by an older semples, or edited): pseudo refuses it, writes no masks."
    cfg, out = tiny_config(tmp_path, steps=4), tmp_path/'run'
    assert run_main(capsys, 'cam', '--config', cfg, '--out', out, '--quiet')[0] == 0
    ck = load_checkpoint(out/'cam'/'checkpoint.pt'); next(iter(ck['model'].values())).fill_(float('nan'))
    torch.save(ck, out/'cam'/'checkpoint.pt')
    code, err = run_main(capsys, 'pseudo', '--config', cfg, '--out', out, '--stage', 'cam', '--quiet')
    assert code == 1 and 'not finite' in err and not list((out/'pseudo_cam').glob('masks/*.png')), err

# ------------------------------------------------------------------ config types
@pytest.mark.parametrize('section,field,value,says', [
    ('cam', 'lr', '0.001', 'cam.lr must be a number, got "0.001"'),
    ('data', 'crop_size', '64', 'data.crop_size must be a whole number, got "64"'),
    ('match', 'steps', True, 'match.steps must be a whole number, got true'),
])
def test_config_type_errors_write_nothing(tmp_path, capsys, section, field, value, says):
    c = json.loads(tiny_config(tmp_path).read_text()); c[section][field] = value; save_json(c, tmp_path/'bad.json')
    code, err = run_main(capsys, 'cam', '--config', tmp_path/'bad.json', '--out', tmp_path/'run', '--quiet')
    assert code == 1 and says in err and err.count('\n') == 1, err
    assert not (tmp_path/'run').exists()                                          # refused before anything was written
    assert run_main(capsys, 'cam', '--config', tiny_config(tmp_path, steps=2), '--out', tmp_path/'run', '--quiet')[0] == 0

def test_out_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path/'afile').write_text('x')
    code, err = run_main(capsys, 'cam', '--config', tiny_config(tmp_path), '--out', tmp_path/'afile'/'run', '--quiet')
    assert code == 1 and 'is a file, not a folder' in err and err.count('\n') == 1, err

# ------------------------------------------------------------------ issue 31: every value checked, every file named, nothing left
@pytest.mark.parametrize('cmd,section,field,value,says', [
    ('segment', 'data', 'size', '448', 'data.size must be a whole number or null, got "448" (write numbers without quotes)'),
    ('pseudo', 'pseudo', 'thresholds', '0.5', 'pseudo.thresholds must be a list or null, got "0.5"'),
    ('cam', 'data', 'cache_dir', 5, 'data.cache_dir must be a string or False or null, got 5'),
    ('segment', 'segment', 'steps', -1, 'segment.steps must be greater than or equal to 1, got -1'),
    ('cam', 'cam', 'lr', float('inf'), 'cam.lr must be a finite number (NaN and Infinity are refused), got Infinity'),
    ('match', 'match', 'lambda_bg', float('nan'), 'match.lambda_bg must be a finite number (NaN and Infinity are refused), got NaN'),
    ('prompts', 'prompts', 'lambda_p', float('nan'), 'prompts.lambda_p must be a finite number'),
    ('refine', 'refine', 'lambda_ref', float('nan'), 'refine.lambda_ref must be a finite number'),
])
def test_config_values_refused_before_anything(tmp_path, capsys, cmd, section, field, value, says):
    "Values that once ran (a string size, a -1 step count, an infinite lr, NaN loss weights): one line naming the field; no folder."
    c = json.loads(tiny_config(tmp_path).read_text()); c[section][field] = value; save_json(c, tmp_path/'bad.json')
    code, err = run_main(capsys, cmd, '--config', tmp_path/'bad.json', '--out', tmp_path/'run', '--quiet')
    assert code == 1 and says in err and str(tmp_path/'bad.json') in err and err.count('\n') == 1, err
    assert not (tmp_path/'run').exists()

def _spoil(kind:str, ck:Path):
    "Spoil a stage-0 checkpoint the way a crash, a wrong copy or another run would."
    if kind == 'empty': ck.write_bytes(b'')
    if kind == 'cut': ck.write_bytes(ck.read_bytes()[:len(ck.read_bytes()) // 2])
    if kind == 'text': ck.write_text('not a checkpoint\n')
    if kind in ('classes', 'key'):
        c = load_checkpoint(ck)
        if kind == 'classes': c['model']['head.weight'] = c['model']['head.weight'][:3]   # a network of 3 classes, not 6
        else: del c['optimizer']
        torch.save(c, ck)

def test_spoilt_checkpoint_on_resume_is_one_line(tmp_path, capsys):
    "Resuming from an empty (once an IndexError), cut, foreign, 3-class (once a RuntimeError traceback) or incomplete checkpoint."
    cfg, out = tiny_config(tmp_path, steps=4), tmp_path/'run'
    assert run_main(capsys, 'cam', '--config', cfg, '--out', out, '--quiet')[0] == 0
    ck = out/'cam'/'checkpoint.pt'; (out/'cam'/'summary.json').unlink(); good = ck.read_bytes()
    for kind, says in (('empty', 'is not a torch checkpoint (an empty file)'), ('cut', 'is not a torch checkpoint (not a zip archive'),
                       ('text', 'is not a torch checkpoint (not a zip archive'), ('classes', 'does not fit this CamNet, so another model, shape or class count wrote it'),
                       ('key', "has no 'optimizer' entry")):
        ck.write_bytes(good); _spoil(kind, ck)
        code, err = run_main(capsys, 'cam', '--config', cfg, '--out', out, '--quiet')
        assert code == 1 and f'{ck} {says}' in err and 'delete it and that stage starts over' in err and err.count('\n') == 1, (kind, err)

@pytest.mark.parametrize('cmd', ['cam', 'match', 'prompts', 'refine', 'pseudo', 'score', 'segment', 'objective'])
def test_refused_stage_command_leaves_no_folder(tmp_path, capsys, cmd):
    "cam with a missing data folder, each later stage before the stage it reads: one line, and no OUT folder (once: OUT/.lock)."
    cfg = tiny_config(tmp_path)
    if cmd == 'cam': c = json.loads(cfg.read_text()); c['data'] = dict(kind='voc', root=str(tmp_path/'no_data')); save_json(c, cfg)
    code, err = run_main(capsys, cmd, '--config', cfg, '--out', tmp_path/'run', '--quiet')
    assert code == 1 and err.count('\n') == 1 and ('no_data' in err if cmd == 'cam' else 'first' in err), err
    assert not (tmp_path/'run').exists()

def test_render_doctor_and_eval_name_the_file(tmp_path, capsys):
    "A notebook that is not JSON (once: 'Expecting value: line 1 column 1 (char 0)', no file named); a file given as the VOC folder."
    f = tmp_path/'nbs'/'x.ipynb'; f.parent.mkdir(); f.write_text('not json')
    code, err = run_main(capsys, 'render', '--nbs', f.parent, '--out', tmp_path/'site')
    assert code == 1 and f'{f} is not valid JSON' in err and err.count('\n') == 1 and not (tmp_path/'site').exists(), err
    assert main(['doctor', str(f)]) == 1 and f'VOC folder {f} is a file, not a folder' in capsys.readouterr().out
    code, err = run_main(capsys, 'eval', '--pred', tmp_path, '--voc', f)
    assert code == 1 and f'VOC folder {f} is a file, not a folder' in err and err.count('\n') == 1, err
