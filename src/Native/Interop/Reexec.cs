using System.Runtime.InteropServices;
using System.Text;

namespace ZonLb.Native.Interop;

/// <summary>
/// Replaces the running process with a fresh copy of itself, same executable and arguments, with variables added to
/// its environment (execve(2); the PID stays, so a service manager sees no change). For settings the .NET runtime
/// reads only from the environment at start, such as the garbage collector's first-generation size.
/// </summary>
public static unsafe partial class Reexec
{
    /// <summary>Does not return when it works; returns the errno when execve failed (the process goes on as it is).</summary>
    public static int WithEnvironment(IReadOnlyDictionary<string, string> add)
    {
        string exe = File.ResolveLinkTarget("/proc/self/exe", returnFinalTarget: true)?.FullName ?? "/proc/self/exe";
        var argv = File.ReadAllBytes("/proc/self/cmdline");
        var args = Encoding.UTF8.GetString(argv).TrimEnd('\0').Split('\0');
        var env = new List<string>();
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
            if (!add.ContainsKey((string)e.Key))
                env.Add($"{e.Key}={e.Value}");
        foreach (var (k, v) in add)
            env.Add($"{k}={v}");
        var allocated = new List<nint>();
        try
        {
            byte** a = Strings(args, allocated);
            byte** e = Strings(env, allocated);
            byte* path = (byte*)Marshal.StringToCoTaskMemUTF8(exe);
            allocated.Add((nint)path);
            execve(path, a, e);
            return Marshal.GetLastPInvokeError();
        }
        finally
        {
            foreach (var p in allocated)
                Marshal.FreeCoTaskMem(p);
        }
    }

    private static byte** Strings(IReadOnlyList<string> strings, List<nint> allocated)
    {
        var array = (byte**)Marshal.AllocCoTaskMem((strings.Count + 1) * sizeof(nint));
        allocated.Add((nint)array);
        for (int i = 0; i < strings.Count; i++)
        {
            array[i] = (byte*)Marshal.StringToCoTaskMemUTF8(strings[i]);
            allocated.Add((nint)array[i]);
        }
        array[strings.Count] = null;
        return array;
    }

    // int execve(const char *pathname, char *const argv[], char *const envp[]);
    [LibraryImport(NativeLibraries.Libc, SetLastError = true)]
    private static partial int execve(byte* pathname, byte** argv, byte** envp);
}
