"""Package metadata for `semples`, read from settings.ini (the nbdev 2 source of truth)."""
from configparser import ConfigParser
from pathlib import Path
from setuptools import find_packages, setup

here = Path(__file__).parent
cfg = ConfigParser(delimiters=['='])
cfg.read(here / 'settings.ini', encoding='utf-8')
c = cfg['DEFAULT']

def reqs(key): return c.get(key, '').split()

setup(
    name=c['lib_name'], version=c['version'], description=c['description'],
    long_description=(here / 'README.md').read_text(encoding='utf-8'), long_description_content_type='text/markdown',
    author=c['author'], author_email=c['author_email'], url=c['git_url'], license='Apache-2.0',
    keywords=c['keywords'].split(), python_requires=f">={c['min_python']}",
    packages=find_packages(include=['semples', 'semples.*']), include_package_data=True,
    install_requires=reqs('requirements'),
    extras_require={'dev': reqs('dev_requirements'), 'crf': reqs('crf_requirements')},
    entry_points={'console_scripts': c['console_scripts'].split(),
                  'nbdev': [f"{c['lib_path']}={c['lib_path']}._modidx:d"]},
    classifiers=['Programming Language :: Python :: 3'],
)
