#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
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
wake_drain(int fd)
{
	char b[64];

	while (recv(fd, b, sizeof b, 0) >= 0)
		;
}

void
wake_send(const char *path)
{
	struct sockaddr_un sa;
	int fd;

	if (make_addr(path, &sa) < 0)
		return;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	(void)sendto(fd, "w", 1, MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof sa);
	close(fd);
}
