using System.Runtime.InteropServices;

namespace ZonLb.Native.Interop;

/// <summary>libc calls: sockets, memory mapping, polling. Each import carries its C prototype.</summary>
internal static unsafe partial class Libc
{
    public const int AF_INET = 2;
    public const int AF_INET6 = 10;
    public const int AF_NETLINK = 16;
    public const int AF_XDP = 44;
    public const int SOCK_RAW = 3;
    public const int SOCK_DGRAM = 2;
    public const int SOCK_CLOEXEC = 0x80000;
    public const int SOL_SOCKET = 1;
    public const int SOL_XDP = 283;
    public const int SO_RCVBUF = 8;
    public const int MSG_DONTWAIT = 0x40;

    public const int PROT_READ = 1;
    public const int PROT_WRITE = 2;
    public const int MAP_SHARED = 0x01;
    public const int MAP_PRIVATE = 0x02;
    public const int MAP_ANONYMOUS = 0x20;
    public const int MAP_POPULATE = 0x8000;
    public static readonly nint MAP_FAILED = -1;

    public const short POLLIN = 0x1;
    public const short POLLOUT = 0x4;

    public const ulong SIOCETHTOOL = 0x8946;

    // int socket(int domain, int type, int protocol);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int socket(int domain, int type, int protocol);

    // int setpriority(int which, id_t who, int prio);  which = PRIO_PROCESS (0), who = a thread id (0: the caller)
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int setpriority(int which, uint who, int prio);

    public const int SO_BUSY_POLL = 46, SO_PREFER_BUSY_POLL = 69, SO_BUSY_POLL_BUDGET = 70;

    // int close(int fd);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int close(int fd);

    // int vsnprintf(char *str, size_t size, const char *format, va_list ap); (a va_list arrives as a pointer)
    [LibraryImport(NativeLibraries.Libc)]
    public static partial int vsnprintf(byte* str, nuint size, byte* format, nint ap);

    // int setenv(const char *name, const char *value, int overwrite);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int setenv(string name, string value, int overwrite);

    // int statfs(const char *path, struct statfs *buf); f_type is the first field (a long)
    [LibraryImport(NativeLibraries.Libc, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int statfs(string path, void* buf);

    // int unsetenv(const char *name);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int unsetenv(string name);

    // int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int setsockopt(int fd, int level, int optname, void* optval, uint optlen);

    // int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int getsockopt(int fd, int level, int optname, void* optval, uint* optlen);

    // int bind(int fd, const struct sockaddr *addr, socklen_t addrlen);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int bind(int fd, void* addr, uint addrlen);

    // ssize_t send(int fd, const void *buf, size_t len, int flags);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial nint send(int fd, void* buf, nuint len, int flags);

    // ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *dest, socklen_t addrlen);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial nint sendto(int fd, void* buf, nuint len, int flags, void* dest, uint addrlen);

    // ssize_t recv(int fd, void *buf, size_t len, int flags);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial nint recv(int fd, void* buf, nuint len, int flags);

    // ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *src, socklen_t *addrlen);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial nint recvfrom(int fd, void* buf, nuint len, int flags, void* src, uint* addrlen);

    // void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial nint mmap(nint addr, nuint length, int prot, int flags, int fd, long offset);

    // int munmap(void *addr, size_t length);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int munmap(nint addr, nuint length);

    // int madvise(void *addr, size_t length, int advice);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int madvise(nint addr, nuint length, int advice);

    public const int MADV_HUGEPAGE = 14;
    /// <summary>Linux 5.14+: populate (prefault) the range writable, as if every page had been written.</summary>
    public const int MADV_POPULATE_WRITE = 23;

    // int poll(struct pollfd *fds, nfds_t nfds, int timeout);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int poll(PollFd* fds, nuint nfds, int timeout);

    // int ioctl(int fd, unsigned long request, ...);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int ioctl(int fd, ulong request, void* arg);

    public const int EFD_CLOEXEC = 0x80000;
    public const int EFD_NONBLOCK = 0x800;

    // int eventfd(unsigned int initval, int flags);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int eventfd(uint initval, int flags);

    // ssize_t read(int fd, void *buf, size_t count);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial nint read(int fd, void* buf, nuint count);

    // ssize_t write(int fd, const void *buf, size_t count);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial nint write(int fd, void* buf, nuint count);

    // int sched_getaffinity(pid_t pid, size_t cpusetsize, cpu_set_t *mask);  (pid 0: the calling thread)
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int sched_getaffinity(int pid, nuint cpusetsize, ulong* mask);

    // int sched_setaffinity(pid_t pid, size_t cpusetsize, const cpu_set_t *mask);  (pid 0: the calling thread)
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int sched_setaffinity(int pid, nuint cpusetsize, ulong* mask);

    // int sched_setscheduler(pid_t pid, int policy, const struct sched_param *param);  (pid 0: the calling thread)
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int sched_setscheduler(int pid, int policy, int* param);

    public const int SCHED_FIFO = 1;

    public const int CLONE_NEWNET = 0x40000000;

    // int setns(int fd, int nstype);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    public static partial int setns(int fd, int nstype);

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }
}
