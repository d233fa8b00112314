"""The tiers are given by what a test uses (tests/tiers.py): checked on a small test suite run by pytester."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = '''
import subprocess, sys
import pytest
from tests.tiers import allow_run_py, pytest_collection_modifyitems, pytest_runtest_protocol  # the plugin

def run_py(*args):
    return subprocess.run([sys.executable, "run.py", *args])

@pytest.fixture
def fake_lsf():
    return "fake"

@pytest.fixture
def cluster(fake_lsf):
    return fake_lsf

@pytest.fixture(scope="module")
def trained():
    run_py("-m")

@pytest.fixture
def shared_sweep():
    with allow_run_py():
        return "the shared sweep"
'''

SUITE = '''
import subprocess, sys
from pathlib import Path
import pytest
from conftest import run_py

def helper():
    return run_py("--help")

def test_pure():
    assert 1 + 1 == 2

def test_on_the_fake_lsf(cluster):
    pass

def test_calls_run_py():
    run_py("--help")

def test_calls_a_helper_that_does():
    helper()

def test_names_the_file():
    subprocess.run([sys.executable, str(Path("x") / "run.py"), "--help"])

def test_uses_a_trained_fixture(trained):
    pass

def test_reads_the_shared_sweep(shared_sweep):
    assert shared_sweep

@pytest.mark.slow
def test_marked_by_hand():
    pass

def test_hides_it():
    name = "".join(["run", ".py"])
    subprocess.run([sys.executable, name, "--help"])
'''


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\nmarkers =\n  full\n  slow\n  slurm\n  lsf\n  lsf_real\n  browser\n  gpu\n")
    return pytester


def test_fast_tier_is_what_uses_no_full_tier_fixture_or_run_py(suite: pytest.Pytester):
    result = suite.runpytest_inprocess("-m", "not full", "--collect-only", "-q")
    fast = {line.split("::")[1] for line in result.outlines if "::" in line}
    assert fast == {"test_pure", "test_reads_the_shared_sweep", "test_hides_it"}


def test_marks_come_from_fixtures_and_calls(suite: pytest.Pytester):
    for marks, expected in [("lsf", {"test_on_the_fake_lsf"}),
                            ("slow", {"test_calls_run_py", "test_calls_a_helper_that_does", "test_names_the_file",
                                      "test_uses_a_trained_fixture", "test_marked_by_hand"})]:
        result = suite.runpytest_inprocess("-m", marks, "--collect-only", "-q")
        assert {line.split("::")[1] for line in result.outlines if "::" in line} == expected, marks


def test_a_fast_test_that_starts_run_py_anyway_fails_saying_how_to_move_it(suite: pytest.Pytester):
    result = suite.runpytest_inprocess("-m", "not full", "-k", "hides or shared or pure")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_hides_it starts run.py in a subprocess but is in the fast tier*"])
