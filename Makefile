# make demo / make test: install what is missing (Debian packages, .venv), then run.
PY ?= python3
VENV := .venv
DEB_PACKAGES := orthanc orthanc-python orthanc-dicomweb dcmtk dicom3tools poppler-utils \
                libjpeg-turbo-progs fonts-dejavu-core libgs-common postgresql \
                orthanc-webviewer chromium
STAMP := $(VENV)/.installed

.PHONY: demo test deps debs

deps: debs $(STAMP)

debs:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

demo: deps
	$(VENV)/bin/telederm demo

test: deps
	$(VENV)/bin/python -m pytest -q
