"""cxr-edge offline model pipeline (training, export, quantisation, calibration, evaluation).

Research use only - not a diagnosis.
"""
LABELS = ["covid", "pneumonia", "normal", "other"]
