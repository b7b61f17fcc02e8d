"""Flask adapter for cachekit (a drop-in for Flask-Caching's API, ``flask cachekit`` commands).

Not implemented yet: it arrives with the Flask adapter issue. The package exists so that the
distribution's layout is stable.
"""
