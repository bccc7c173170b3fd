"""The sans-IO network (byte streams with TCP's guarantees) and the scripted client peer."""
