"""The tool's ground floor: archives, the command line, errors, files, processes, the layer protocol.

Every phase package (`build`, `lock`, `deploy`) imports from here; nothing here imports a phase.
"""
