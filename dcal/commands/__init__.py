"""The ``dcal`` sub-commands, one module each; see :mod:`dcal.cli` for the protocol they follow."""
