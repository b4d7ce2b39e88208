#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wake.h"

static int
make_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (path == NULL || *path == '\0' || strlen(path) >= sizeof sa->sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa->sun_path, path, strlen(path) + 1);
	return 0;
}

int
wake_listen(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if (make_addr(path, &sa) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	/* Handlers may run as another user than genqd. */
	chmod(path, 0666);
	return fd;
}

void
wake_drain(int fd, wake_fn fn, void *arg)
{
	/* One byte over the longest: a datagram that long was cut short. */
	char b[1 + WAKE_QUEUE_MAX + 2];
	ssize_t n;

	while ((n = recv(fd, b, sizeof b - 1, 0)) >= 0) {
		bool named = n >= 2 && n <= 1 + WAKE_QUEUE_MAX && b[0] == 'q' &&
		    memchr(b + 1, '\0', (size_t)n - 1) == NULL;

		b[n] = '\0';
		fn(arg, named ? b + 1 : NULL);
	}
}

void
wake_send(const char *path, const char *queue)
{
	char msg[1 + WAKE_QUEUE_MAX] = "w";
	size_t len = 1, qlen = queue != NULL ? strlen(queue) : 0;
	struct sockaddr_un sa;
	int fd;

	if (make_addr(path, &sa) < 0)
		return;
	if (qlen > 0 && qlen <= WAKE_QUEUE_MAX) {
		msg[0] = 'q';
		memcpy(msg + 1, queue, qlen);
		len += qlen;
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	(void)sendto(fd, msg, len, MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
}
