# bash completion for wgpy, whose command line is wireguard-go's: wgpy [-f|--foreground] IFNAME,
# wgpy --version.  Hand-written (the command line is fixed).  Install:
#   cp wgpy.bash /usr/share/bash-completion/completions/wgpy
# IFNAME names a new interface, so there is nothing to complete for it: only the options are.

_wgpy() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    COMPREPLY=()
    if [[ $COMP_CWORD -eq 1 && $cur == -* ]]; then
        COMPREPLY=($(compgen -W '-f --foreground --version' -- "$cur"))
    fi
}

complete -F _wgpy wgpy
