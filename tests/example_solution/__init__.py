"""Tests of the example Solution (examples/example-solution): build, images, operator, CRDs."""
