"""The staff dashboard's customer pages, read side: the customers list and one customer's entitlements, seats and
licence keys (:mod:`.service`), over the statements of :mod:`.repository`."""
