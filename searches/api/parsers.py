"""The API's JSON parser: JSON's ``\\ud800`` escapes can spell a lone UTF-16 surrogate,
which Python accepts in a str but Postgres (UTF-8) cannot store. Refused here, with
where it was, as a 400 before any view runs."""
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _lone_surrogate_at(value, where: str = "") -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "the body"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and _lone_surrogate_at(key) is not None:
            return f"{where}.{key}" if where else "a key"
        found = _lone_surrogate_at(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        where = _lone_surrogate_at(data)
        if where is not None:
            raise ParseError(f"JSON parse error - {where} holds a lone UTF-16 surrogate (e.g. \\ud800), "
                             f"which is not valid text.")
        return data
