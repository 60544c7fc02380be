"""The provider's catalogue: models, their versions and wrapped keys, reference values and appraisal policies, as
staff manage them (:mod:`.service`: the rules; :mod:`.repository`: the SQL). What a decision reads of it is in
:mod:`verifier.attestation.catalog`."""
