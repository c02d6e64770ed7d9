"""The package version: the one number every result file and figure records."""

VERSION = "0.1.0"
