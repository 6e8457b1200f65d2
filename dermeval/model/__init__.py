"""The DermEval model: fusion network, training, calibration, critique and the one loader."""
