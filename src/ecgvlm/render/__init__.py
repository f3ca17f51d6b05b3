"""Render ECG records as paper printouts with realistic degradations and a pixel-exact sidecar."""
