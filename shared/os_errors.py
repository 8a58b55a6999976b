"""Operating-system errors told in Chinese: `OSError.strerror` is the C library's English ("Permission
denied"), and users never see library text (developers' guide). Unknown errors get a generic phrase;
the errno stays in the log through the chained exception."""
from __future__ import annotations

import errno

_ZH = {
    errno.EACCES: "没有访问权限",
    errno.EPERM: "操作不被允许",
    errno.ENOENT: "文件或目录不存在",
    errno.EEXIST: "文件已存在",
    errno.EISDIR: "这是一个目录，不是文件",
    errno.ENOTDIR: "路径中有一部分不是目录",
    errno.ENOSPC: "磁盘空间不足",
    errno.EROFS: "文件系统只读",
    errno.EMFILE: "打开的文件过多",
    errno.EADDRINUSE: "端口已被占用",
    errno.EADDRNOTAVAIL: "本机没有这个地址",
    errno.ECONNREFUSED: "连接被拒绝",
    errno.ETIMEDOUT: "连接超时",
    errno.EIO: "磁盘读写错误",
    errno.ENAMETOOLONG: "文件名过长",
}


def os_error_zh(exc: OSError) -> str:
    """A short Chinese reason for `exc`, for messages users read."""
    return _ZH.get(exc.errno or -1, "系统错误")
