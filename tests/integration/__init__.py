"""Integration tests on the real models; a package, so its module names never clash with unit tests."""
