"""The operator's version; the image build replaces this file with the Solution version."""

VERSION = "0.0.0+dev"
