"""The office's ingestion pages: batches, CSV upload, rejected rows."""

import models.records  # noqa: F401  (registers the record tables)
