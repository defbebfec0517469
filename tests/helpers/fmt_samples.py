"""Manifest texts for ``fmt`` tests: one written carelessly, and its canonical form."""

from __future__ import annotations

MESSY = """\
# The traffic cameras: a header comment that stays on top.
kind: FileMetadata   # the kind
folder:   traffic/cams-2024

# Selectors, in the order they apply.
files:
    # the first one
    - glob: "cam0*.mp4"     # every cam0x
      metadata: {capture.weather:   rain,   tags: [a,b]}
    -   name: 'cam01.mp4'
        metadata:
            capture.weather: fog
            caption: null
            note: |
              # not a comment: text
              second line
apiVersion: reconciler/v1
owns: ["capture.*"]
# the mode comes before owns
mode: merge
# trailing comment
"""

CANONICAL = """\
# The traffic cameras: a header comment that stays on top.
apiVersion: reconciler/v1
kind: FileMetadata   # the kind
folder: traffic/cams-2024
# the mode comes before owns
mode: merge
owns: ["capture.*"]

# Selectors, in the order they apply.
files:
  # the first one
  - glob: "cam0*.mp4"       # every cam0x
    metadata: {capture.weather: rain, tags: [a, b]}
  - name: 'cam01.mp4'
    metadata:
      capture.weather: fog
      caption: null
      note: |
        # not a comment: text
        second line
# trailing comment
"""
