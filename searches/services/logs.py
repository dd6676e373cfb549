"""A candidate's training log: appended in bounded chunks (never a write per line)."""
from ..models import CandidateLog

LOG_MAX_LINES = 5000  # per candidate; past it one last line says the rest was dropped
LOG_MAX_LINE_CHARS = 2000


def candidate_log_append(candidate_id: int, *, first_line: int, lines: list[str]) -> int:
    """Store one chunk of a candidate's log; returns how many lines were kept (0 past the cap
    or when the chunk is already stored: a retried flush is harmless)."""
    keep = max(0, min(len(lines), LOG_MAX_LINES + 1 - first_line))
    lines = [line[:LOG_MAX_LINE_CHARS] for line in lines[:keep]]
    if keep and first_line + keep > LOG_MAX_LINES:
        lines[-1] = f"… log cut at {LOG_MAX_LINES} lines"
    if not lines:
        return 0
    _, created = CandidateLog.objects.get_or_create(
        candidate_id=candidate_id, first_line=first_line,
        defaults={"line_count": len(lines), "text": "\n".join(lines)})
    return len(lines) if created else 0
