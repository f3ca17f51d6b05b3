"""ECG records: the record type, the SCP label vocabulary, a synthetic generator and readers."""

from ecgvlm.signals.record import LEADS, ECGRecord

__all__ = ["LEADS", "ECGRecord"]
