from django.http import HttpResponse

from .models import Visit


def visits(request):
    Visit.objects.create(path=request.path)  # @v
    n = Visit.objects.filter(path=request.path).count()  # @v
    return HttpResponse("visits %d" % n)  # @v


def never(request):
    return HttpResponse("never")  # @n
