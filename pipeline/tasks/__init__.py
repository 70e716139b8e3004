"""The tasks of a run (classification, anomaly detection, generation), one module each."""
