"""LICENSE and CITATION.cff: present, and consistent with pyproject.toml and
the method's reference in the code."""
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pyproject_field(name):
    text = (ROOT / 'pyproject.toml').read_text()
    return re.search(rf'^{name} = (.+)$', text, re.MULTILINE).group(1)


def test_license_is_the_mit_license_pyproject_declares():
    assert pyproject_field('license') == '{ text = "MIT" }'
    text = (ROOT / 'LICENSE').read_text()
    assert text.startswith('MIT License\n\nCopyright (c) 2026 tcmp_pyg developers\n')
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def read_citation():
    text = (ROOT / 'CITATION.cff').read_text()
    if importlib.util.find_spec('yaml') is not None:
        import yaml
        return yaml.safe_load(text)
    # Without PyYAML: the top-level scalar keys, and the references as text.
    data = {m.group(1): m.group(2).strip('"') for m in
            re.finditer(r'^([a-z-]+): (.+)$', text, re.MULTILINE)}
    for key in ('authors', 'references'):
        if re.search(rf'^{key}:$', text, re.MULTILINE):
            data[key] = text.split(f'\n{key}:\n', 1)[1]
    return data


def test_citation_file_has_the_required_keys_and_the_method():
    cff = read_citation()
    for key in ('cff-version', 'message', 'title', 'authors'):  # required by CFF
        assert cff.get(key), key
    assert cff['cff-version'] == '1.2.0'
    assert str(cff['version']) == pyproject_field('version').strip('"')
    assert cff['license'] == 'MIT'
    references = str(cff['references'])
    # The reference the code gives in tcmp_pyg/pruning/tcmp.py.
    code = (ROOT / 'tcmp_pyg' / 'pruning' / 'tcmp.py').read_text()
    arxiv = re.search(r'arxiv\.org/abs/(\d{4}\.\d{5})', code).group(1)
    assert 'Sahbi' in code and 'Sahbi' in references and 'Hichem' in references
    assert f'arxiv.org/abs/{arxiv}' in references
    assert f'10.48550/arXiv.{arxiv}' in references


@pytest.mark.skipif(importlib.util.find_spec('yaml') is None,
                    reason='the structural check needs PyYAML')
def test_citation_file_structure():
    cff = read_citation()
    assert cff['authors'] == [{'name': 'tcmp_pyg developers'}]
    (paper, ) = cff['references']
    assert paper['type'] == 'article' and paper['year'] == 2023
    assert paper['authors'] == [{'family-names': 'Sahbi', 'given-names': 'Hichem'}]
    assert {i['type'] for i in paper['identifiers']} == {'doi', 'other'}
