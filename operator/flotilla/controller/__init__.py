"""The kopf controller: thin handlers registered in one module, the ``flotilla operator`` command."""
