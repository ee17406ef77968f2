"""Views that enqueue from a request and read the result back."""

from django.http import HttpRequest, JsonResponse

from ferroq import ResultTimeoutError

from .tasks import send_welcome


def signup(request: HttpRequest) -> JsonResponse:
    handle = send_welcome.delay(request.POST["email"])
    return JsonResponse({"id": handle.id}, status=202)


def status(request: HttpRequest, task_id: str) -> JsonResponse:
    handle = send_welcome.handle(task_id)
    try:
        return JsonResponse({"done": True, "result": handle.get(timeout=10)})
    except ResultTimeoutError:
        return JsonResponse({"done": False, "state": handle.state.value})
