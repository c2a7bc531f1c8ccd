"""The test suite; shared code lives in :mod:`tests.helpers`."""

import pytest

# Before the first import of a helper, so that their asserts explain failures as the tests' do.
pytest.register_assert_rewrite("tests.helpers")
