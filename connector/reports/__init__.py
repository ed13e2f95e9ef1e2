"""Reports: conduct codes, labels and the read-only PDF of the dermatologist's answer."""
